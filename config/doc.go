// Package config owns the persist config: its TOML schema, the default
// embedded in the binary, validation, sizes and volume name templates.
//
// Parse and Load return a *Config that is valid and complete: every
// default is filled in (state_dir, a loopfile backend's default_size, a
// machine class's name, on_image_change and size, a scratch medium, a sized
// volume's size), every class and volume names a defined backend, no two
// mounts of a class overlap, no backend shares a directory with another or
// with the state dir's own directories, no host path is a system directory,
// every path fits PATH_MAX and NAME_MAX, and every size is one an image can
// be made with (MinDiskSize, MinVolumeSize, MaxSize). Callers may rely on
// that instead of
// checking again, and must not modify a Config they did not parse: it may
// be shared.
//
// A bad config is refused whole. The *Error lists every problem with the
// key and line it is about, and unwraps to ErrInvalid.
//
// Name templates are checked here for syntax, placeholders and the text
// around them; the expanded volume name is checked by whoever uses it (the
// volumes package), because the values come from the container.
//
// This package does no I/O beyond reading the config file and imports
// nothing of containerd, so it runs unprivileged in unit tests and persistctl.
package config
