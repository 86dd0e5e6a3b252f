package host

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
)

// Linux is the real Mounter.
type Linux struct {
	// Monitor starts and waits for commands. A shim must pass its reaper:
	// it reaps every exited child, so a plain exec.Cmd.Wait would find its
	// child gone (ECHILD). nil runs commands directly.
	Monitor runc.ProcessMonitor
}

// Mount implements Mounter.
func (Linux) Mount(m mount.Mount, target string) error {
	if err := m.Mount(target); err != nil {
		return fmt.Errorf("mount %s %s at %s: %w", m.Type, m.Source, target, err)
	}
	return nil
}

// Unmount implements Mounter. EINVAL (not a mountpoint) and ENOENT are
// success: the step was already undone or never done.
func (Linux) Unmount(target string) error {
	err := mount.Unmount(target, 0)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("unmount %s: %w", target, err)
}

// MakeImage implements Mounter.
func (l Linux) MakeImage(path string, size uint64, journaled bool) (retErr error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			os.Remove(path)
		}
	}()
	err = f.Truncate(int64(size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("size image %s: %w", path, err)
	}
	features := "^has_journal"
	if journaled {
		features = "has_journal"
	}
	// lazy init and nodiscard keep mkfs from writing the whole sparse file.
	cmd := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", "-O", features,
		"-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", path)
	if out, err := l.output(cmd); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return errors.New("mkfs.ext4 not found: install e2fsprogs")
		}
		return fmt.Errorf("mkfs.ext4 %s: %v: %s", path, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// output runs cmd and returns its combined output, through the monitor if
// there is one.
func (l Linux) output(cmd *exec.Cmd) ([]byte, error) {
	if l.Monitor == nil {
		return cmd.CombinedOutput()
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	ec, err := l.Monitor.Start(cmd)
	if err != nil {
		return nil, err
	}
	status, err := l.Monitor.Wait(cmd, ec)
	if err == nil && status != 0 {
		err = fmt.Errorf("exit status %d", status)
	}
	return out.Bytes(), err
}
