package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	introspectionapi "github.com/containerd/containerd/api/services/introspection/v1"
	versionapi "github.com/containerd/containerd/api/services/version/v1"
	apitypes "github.com/containerd/containerd/api/types"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
)

const (
	// runtimeName is the runtime type containerd knows the shim by
	// (DESIGN.md).
	runtimeName = "io.containerd.persist.v1"
	shimBinary  = "containerd-shim-persist-v1"
	// runcVersionAnnotation is where `runc features` says its version.
	runcVersionAnnotation = "org.opencontainers.runc.version"
)

// runtimeReport is what containerd says of itself and of our runtime.
// containerd answers for the runtime as it would run it: it finds the shim
// on its own PATH, runs its Info, which asks runc for its features, and so
// names the runc that containers would get. persistctl's own PATH may
// differ from containerd's.
type runtimeReport struct {
	containerd    string // its version
	containerdErr error
	info          *apitypes.RuntimeInfo
	infoErr       error
	runc          string // the version runc gave the shim, if it did
}

func askRuntime(ctx context.Context, address string) runtimeReport {
	var r runtimeReport
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second) // the runtime's Info runs the shim and runc
	defer cancel()
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		r.containerdErr, r.infoErr = err, err
		return r
	}
	defer conn.Close()
	v, err := versionapi.NewVersionClient(conn).Version(ctx, &emptypb.Empty{})
	switch {
	case err != nil:
		r.containerdErr = fmt.Errorf("containerd does not answer at %s (%s): start it, or give its socket with --address", address, status.Convert(err).Message())
		r.infoErr = fmt.Errorf("containerd did not answer, so it could not say whether it can run runtime %s", runtimeName)
		return r
	case !atLeast(v.GetVersion(), minContainerd):
		r.containerdErr = fmt.Errorf("containerd %s is too old: upgrade to %d.%d or newer", v.GetVersion(), minContainerd[0], minContainerd[1])
	default:
		r.containerd = v.GetVersion()
	}
	r.info, r.infoErr = runtimeInfo(ctx, conn)
	if r.infoErr == nil {
		r.runc = runcOf(r.info)
	}
	return r
}

// runtimeInfo asks containerd's introspection service for the info of a
// runtime, as ctr and the containerd client's RuntimeInfo do.
func runtimeInfo(ctx context.Context, conn *grpc.ClientConn) (*apitypes.RuntimeInfo, error) {
	req, err := typeurl.MarshalAnyToProto(&apitypes.RuntimeRequest{RuntimePath: runtimeName})
	if err != nil {
		return nil, err
	}
	resp, err := introspectionapi.NewIntrospectionClient(conn).PluginInfo(ctx, &introspectionapi.PluginInfoRequest{
		Type: "io.containerd.runtime.v2", ID: "task", Options: req,
	})
	if err != nil {
		return nil, fmt.Errorf("containerd cannot run runtime %s: %s: install %s in a directory on containerd's PATH, or beside the containerd binary",
			runtimeName, status.Convert(err).Message(), shimBinary)
	}
	var info apitypes.RuntimeInfo
	if err := proto.Unmarshal(resp.GetExtra().GetValue(), &info); err != nil {
		return nil, fmt.Errorf("read containerd's info of runtime %s: %w", runtimeName, err)
	}
	return &info, nil
}

// runcOf is the runc version in a runtime's features, "" if it gave none:
// runc before 1.1 has no `runc features`.
func runcOf(info *apitypes.RuntimeInfo) string {
	f := info.GetFeatures()
	if f == nil || !strings.HasSuffix(f.GetTypeUrl(), "features/Features") {
		return ""
	}
	var feat features.Features
	if json.Unmarshal(f.GetValue(), &feat) != nil {
		return ""
	}
	return strings.TrimSpace(feat.Annotations[runcVersionAnnotation])
}

func checkShim(r runtimeReport) check {
	if r.infoErr != nil {
		return failed(r.infoErr)
	}
	msg := "containerd runs runtime " + runtimeName
	if v := r.info.GetVersion(); v.GetVersion() != "" {
		msg += " (runc task service of containerd " + v.GetVersion() + ")"
	}
	// Only a hint: containerd's PATH is what counts, and it may differ.
	if p, err := exec.LookPath(shimBinary); err == nil {
		msg = p + " on this PATH, and " + msg
	}
	return passed(msg)
}

// checkRunc judges the runc that containerd's runtime reported, or, when
// it reported none, the one on this PATH.
func checkRunc(r runtimeReport) check {
	version, where := r.runc, "as containerd's runtime reports it"
	if version == "" {
		why := "containerd could not be asked"
		if r.infoErr == nil {
			why = "containerd's runtime reported no runc version: runc before 1.1 has no `runc features`, which it asks"
		}
		p, err := exec.LookPath("runc")
		if err != nil {
			return failed(fmt.Errorf("%s, and runc is not on this PATH either: install runc 1.3.3 or newer where containerd finds it", why))
		}
		out, err := exec.Command(p, "--version").Output()
		if err != nil {
			return failed(fmt.Errorf("%s --version: %v", p, err))
		}
		// "runc version 1.3.0" on the first line.
		line, _, _ := bytes.Cut(out, []byte("\n"))
		if f := strings.Fields(string(line)); len(f) >= 3 {
			version = f[2]
		}
		where = fmt.Sprintf("%s, on this PATH (%s)", p, why)
	}
	return judgeRunc(version, where)
}

// judgeRunc says what a runc version lacks, by feature. Nothing in the
// shim needs a runc newer than 1.1 to run; what needs newer ones:
//   - 1.2.8, 1.3.3, 1.4.0: the fixes of November 2025 for containers that
//     escape through races on the mounts runc makes (CVE-2025-31133,
//     CVE-2025-52565, CVE-2025-52881). The guarantee that nothing a
//     container plants reaches a host path relies on them: fail.
//   - 1.3: what containerd-persist is built and tested with: warn.
//
// A pre-release counts as older than its release.
func judgeRunc(version, where string) check {
	v, ok := parseVersion(version)
	switch {
	case !ok:
		return failed(fmt.Errorf("runc version %q (%s) is not one doctor can read: install runc 1.3.3 or newer", version, where))
	case !hasEscapeFixes(v):
		return failed(fmt.Errorf("runc %s (%s) lacks the fixes for container escapes through races on its mounts "+
			"(CVE-2025-31133, CVE-2025-52565, CVE-2025-52881; fixed in 1.2.8, 1.3.3 and 1.4.0), on which the guarantee "+
			"that no container reaches a host path relies: install runc 1.3.3 or newer "+
			"(a distribution's build may carry the fixes as patches: see its changelog)", version, where))
	case v.less(semver{testedRunc[0], testedRunc[1], 0, false}):
		return warned(fmt.Sprintf("runc %s (%s) has the escape fixes, but containerd-persist is built and tested with runc %d.%d and newer: upgrade when you can",
			version, where, testedRunc[0], testedRunc[1]))
	}
	return passed(version + " (" + where + ")")
}

// semver is major.minor.patch, and whether it is a pre-release of it.
type semver struct {
	major, minor, patch int
	pre                 bool
}

func (a semver) less(b semver) bool {
	switch {
	case a.major != b.major:
		return a.major < b.major
	case a.minor != b.minor:
		return a.minor < b.minor
	case a.patch != b.patch:
		return a.patch < b.patch
	}
	return a.pre && !b.pre
}

// parseVersion reads 1.3.3, v1.4.0-rc.3 or 1.1.5+ds1.
func parseVersion(s string) (semver, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	core, _, _ := strings.Cut(s, "+")
	core, pre, hasPre := strings.Cut(core, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return semver{}, false
	}
	var n [3]int
	for i, p := range parts {
		var err error
		if n[i], err = strconv.Atoi(p); err != nil || n[i] < 0 {
			return semver{}, false
		}
	}
	return semver{n[0], n[1], n[2], hasPre && pre != ""}, true
}

// hasEscapeFixes reports whether runc v has the fixes of November 2025:
// 1.2.8 on the 1.2 line, 1.3.3 on the 1.3 line, 1.4.0 and later.
func hasEscapeFixes(v semver) bool {
	switch {
	case v.major == 1 && v.minor == 2:
		return !v.less(semver{1, 2, 8, false})
	case v.major == 1 && v.minor == 3:
		return !v.less(semver{1, 3, 3, false})
	}
	return !v.less(semver{1, 4, 0, false})
}

// atLeast compares the major.minor of a version like v2.4.2 or 1.3.0-rc.1.
func atLeast(version string, min [2]int) bool {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) < 2 {
		return false
	}
	digits := strings.FieldsFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' })
	if len(digits) == 0 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(digits[0])
	if err1 != nil || err2 != nil {
		return false
	}
	return major > min[0] || major == min[0] && minor >= min[1]
}
