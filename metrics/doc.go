//go:build linux

// Package metrics collects Prometheus metrics of a host's persistent
// volumes, running containers' scratch areas, gc leftovers and the shim's
// setup and teardown times, with the Prometheus Go client library. A
// Collector is a prometheus.Gatherer too, which persistctl serves: it gives
// what a registry holding it would, the families in the same order, but
// builds them in order instead of having the registry check and sort each
// of the eight or so samples per volume.
//
// Metrics (labels of volume metrics: namespace, tenant, volume, backend,
// class; the names follow kubelet's volume stats):
//
//	persist_volume_{capacity,available,used}_bytes
//	persist_volume_inodes, persist_volume_inodes_{free,used}
//	persist_volume_attached{holder}                  1 while a container holds it
//	persist_volume_last_attach_timestamp_seconds
//	persist_scratch_{capacity,used,available}_bytes  {namespace,container,path,medium}
//	persist_gc_leftovers{kind}
//	persist_shim_setup_duration_seconds{class}       histogram
//	persist_shim_teardown_duration_seconds           histogram
//	persist_scrape_errors
//
// Invariants:
//   - A scrape never mounts, locks or writes a volume. A loopfile volume is
//     measured by statfs of its mount in this state dir while attached, and
//     otherwise from its image's ext4 superblock (one 1 KiB read). A dir
//     volume whose content is a filesystem of its own is measured by
//     statfs; any other is walked with fstree.Walk, the result cached in
//     memory and in <state_dir>/metrics/dirusage.json for Options.DirTTL,
//     with at most Options.DirBudget entries walked per scrape. A volume not
//     yet walked reports capacity and free space but no used figures.
//   - No label has unbounded cardinality: container (scratch) and holder
//     (attached) name live containers only, and their series end with them.
//   - The shim's records are read, never written, here: see package timings.
//   - Labels are the volume's own names from its directory and metadata;
//     nothing a container writes inside a volume reaches a label.
//
// Callers must not run a Collector against a state dir that other hosts
// share: mounts are looked up in this host's state dir only, and a volume
// attached on another host is read from its superblock, whose counters lag
// while it is mounted there.
//
// Linux only: it reads statfs, mountinfo and ext4 superblocks, through
// volumes and state.
package metrics
