package main

import (
	"strings"
	"testing"
)

func TestFailpointOf(t *testing.T) {
	hook, err := failpointOf(map[string]string{annotationFailpoint: "create:3:error"})
	if err != nil || hook == nil {
		t.Fatalf("failpointOf = %v, %v", hook, err)
	}
	if err := hook("create", 2); err != nil {
		t.Errorf("fired at step 2: %v", err)
	}
	if err := hook("delete", 3); err != nil {
		t.Errorf("fired in delete: %v", err)
	}
	if err := hook("create", 3); err == nil || !strings.Contains(err.Error(), "failpoint after create step 3") {
		t.Errorf("at create step 3 = %v, want the failpoint's error", err)
	}
	if hook, err := failpointOf(nil); hook != nil || err != nil {
		t.Errorf("no annotation = %v, %v; want no hook", hook, err)
	}
	for _, bad := range []string{"create:3", "run:1:error", "create:-1:error", "create:x:error", "delete:1:explode"} {
		if _, err := failpointOf(map[string]string{annotationFailpoint: bad}); err == nil {
			t.Errorf("failpoint %q was taken", bad)
		}
	}
}
