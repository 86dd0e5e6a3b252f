package overlay

import (
	"reflect"
	"strings"
	"testing"
)

func TestMoveUpper(t *testing.T) {
	const upper, work = "/vol/upper", "/vol/work"
	tests := []struct {
		name      string
		mountType string
		options   []string
		want      []string
		wantErr   []string // substrings of the error
	}{
		{
			name:      "snapshot upper replaced",
			mountType: "overlay",
			options:   []string{"index=off", "workdir=/snap/2/work", "upperdir=/snap/2/fs", "lowerdir=/snap/1/fs"},
			want:      []string{"lowerdir=/snap/1/fs", "upperdir=" + upper, "workdir=" + work, "index=off"},
		},
		{
			name:      "idmap and other options kept in order",
			mountType: "overlay",
			options: []string{
				"lowerdir=/snap/3/fs:/snap/1/fs", "uidmap=0:100000:65536", "gidmap=0:100000:65536",
				"upperdir=/snap/4/fs", "workdir=/snap/4/work", "userxattr", "rw",
			},
			want: []string{
				"lowerdir=/snap/3/fs:/snap/1/fs", "uidmap=0:100000:65536", "gidmap=0:100000:65536", "userxattr", "rw",
				"upperdir=" + upper, "workdir=" + work, "index=off",
			},
		},
		{
			name:      "index=on forced off",
			mountType: "overlay",
			options:   []string{"lowerdir=/l", "index=on", "upperdir=/u", "workdir=/w"},
			want:      []string{"lowerdir=/l", "upperdir=" + upper, "workdir=" + work, "index=off"},
		},
		{
			name:      "lower only",
			mountType: "overlay",
			options:   []string{"lowerdir=/a:/b"},
			want:      []string{"lowerdir=/a:/b", "upperdir=" + upper, "workdir=" + work, "index=off"},
		},
		{
			name:      "bind root",
			mountType: "bind",
			options:   []string{"rbind", "rw"},
			wantErr:   []string{`"bind"`, "overlayfs snapshotter"},
		},
		{
			name:      "no type",
			mountType: "",
			options:   []string{"lowerdir=/l"},
			wantErr:   []string{"overlayfs snapshotter"},
		},
		{
			name:      "read-only snapshot",
			mountType: "overlay",
			options:   []string{"ro", "lowerdir=/a:/b"},
			wantErr:   []string{"read-only"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]string(nil), tt.options...)
			got, err := MoveUpper(tt.mountType, tt.options, upper, work)
			if !reflect.DeepEqual(tt.options, in) {
				t.Errorf("MoveUpper changed its input to %q", tt.options)
			}
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("MoveUpper = %q, want an error", got)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("MoveUpper =\n %q\nwant\n %q", got, tt.want)
			}
		})
	}
}
