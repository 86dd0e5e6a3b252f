package integration

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// linkImage is image1 with one more layer, which makes /mnt a link to var
// (images do this, and pod specs then mount at /mnt) and puts a file in
// /var/tmp, so that a scratch there has content of two layers.
const linkImage = "docker.io/library/persist-test:mnt-link"

const escapeConfig = `default_class = "web"

[classes.web]
mode = "immutable"
selectable = true
[[classes.web.scratch]]
path = "/var/tmp"
medium = "memory"
size = "8MiB"

[classes.webdisk]
mode = "immutable"
selectable = true
[[classes.webdisk.scratch]]
path = "/var/tmp"
medium = "disk"
size = "16MiB"

[classes.plain]
mode = "immutable"
selectable = true
`

// A pod shares a host directory (an emptyDir) between its containers, and
// mounts it at /mnt, which the image links to var. One container plants
// tmp -> a host directory in it; runc binds the emptyDir over the root's
// /var, so /var/tmp of a later container is that link. The later
// container's scratch at /var/tmp must still lay over the image's own
// /var/tmp, never over the host directory the link names.
func TestScratchLowerIgnoresPlantedLinks(t *testing.T) {
	tc := newCase(t, escapeConfig)
	img := tc.linkImage()
	emptyDir := filepath.Join(tc.dir, "emptydir")
	secret := filepath.Join(tc.dir, "host-secret")
	for _, d := range []string{emptyDir, secret} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(secret, "canary"), []byte("host canary 5e1d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bind := "type=bind,src=" + emptyDir + ",dst=/mnt,options=rbind:rw"

	// The planting container's class has no scratch, so nothing is mounted
	// at the emptyDir's tmp when it plants the link.
	out, err := tc.runMount("plant", img, bind, []string{class("plain")}, "sh", "-c", "ln -s "+secret+" /mnt/tmp && ls /var")
	if err != nil {
		t.Fatalf("plant: %v: %s", err, out)
	}
	if target, err := os.Readlink(filepath.Join(emptyDir, "tmp")); err != nil || target != secret {
		t.Fatalf("the emptyDir's tmp = %q, %v; want a link to %s", target, err, secret)
	}

	for _, cls := range []string{"web", "webdisk"} {
		t.Run(cls, func(t *testing.T) {
			out, err := tc.runMount("victim-"+cls, img, bind, []string{class(cls)}, "sh", "-c",
				"cat /var/tmp/canary; ls -a /var/tmp/; cat /var/tmp/from-layer2")
			if strings.Contains(out, "host canary 5e1d") {
				t.Fatalf("the scratch at /var/tmp shows the host's directory %s:\n%s", secret, out)
			}
			if err != nil {
				// Refusing is also fine, with one line that says why.
				mustContain(t, out, "scratch")
				return
			}
			mustContain(t, out, "image /var/tmp file")
		})
	}
	if b, err := os.ReadFile(filepath.Join(secret, "canary")); err != nil || string(b) != "host canary 5e1d\n" {
		t.Errorf("the host's canary changed: %q, %v", b, err)
	}
	if entries, _ := os.ReadDir(secret); len(entries) != 1 {
		t.Errorf("the host directory %s holds %d entries, want only the canary", secret, len(entries))
	}
}

// runMount runs a container to its end with a ctr --mount, as a pod spec's
// volume mount.
func (tc *tcase) runMount(id, image, mount string, annotations []string, cmd ...string) (string, error) {
	args := tc.runArgs(id, image, annotations, cmd, false)
	i := slices.Index(args, image)
	return ctr(tc.namespace, slices.Insert(args, i, "--mount", mount)...)
}

var linkImageOnce struct {
	sync.Once
	tar string
	err error
}

// linkImage builds linkImage once and imports it into the test's namespace.
func (tc *tcase) linkImage() string {
	tc.t.Helper()
	linkImageOnce.Do(func() {
		linkImageOnce.tar = filepath.Join(daemon.dir, "images", "mnt-link.tar")
		linkImageOnce.err = addLayer(filepath.Join(daemon.dir, "images", "image1.tar"), linkImageOnce.tar, linkImage, []tarEntry{
			{name: "mnt", link: "var"},
			{name: "var/", mode: 0o755},
			{name: "var/tmp/", mode: 0o1777},
			{name: "var/tmp/from-layer2", mode: 0o644, data: "image /var/tmp file\n"},
		})
	})
	if linkImageOnce.err != nil {
		tc.t.Fatal(linkImageOnce.err)
	}
	if out, err := ctr(tc.namespace, "images", "import", linkImageOnce.tar); err != nil {
		tc.t.Fatalf("import %s: %v: %s", linkImageOnce.tar, err, out)
	}
	return linkImage
}

// tarEntry is a file of a layer: a directory when name ends in "/", a
// symlink when link is set, else a regular file holding data.
type tarEntry struct {
	name, link, data string
	mode             int64
}

// addLayer writes to out an OCI image layout tar named name: the single
// image of the layout tar in, with one uncompressed layer of entries added
// on top.
func addLayer(in, out, name string, entries []tarEntry) error {
	blobs, err := readTar(in)
	if err != nil {
		return err
	}
	var index struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(blobs["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		return fmt.Errorf("index of %s: want one manifest, %v", in, err)
	}
	var manifest map[string]any
	if err := json.Unmarshal(blobs[blobPath(index.Manifests[0].Digest)], &manifest); err != nil {
		return fmt.Errorf("manifest of %s: %w", in, err)
	}
	cfgDesc := manifest["config"].(map[string]any)
	var config map[string]any
	if err := json.Unmarshal(blobs[blobPath(cfgDesc["digest"].(string))], &config); err != nil {
		return fmt.Errorf("config of %s: %w", in, err)
	}

	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: tar.TypeReg, Size: int64(len(e.data)), Format: tar.FormatPAX}
		switch {
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		case strings.HasSuffix(e.name, "/"):
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write([]byte(e.data)); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerDigest := addBlob(blobs, layer.Bytes())
	rootfs := config["rootfs"].(map[string]any)
	rootfs["diff_ids"] = append(rootfs["diff_ids"].([]any), layerDigest)
	config["history"] = append(config["history"].([]any), map[string]any{"created_by": "integration: add a layer"})
	cfgBytes, _ := json.Marshal(config)
	cfgDesc["digest"], cfgDesc["size"] = addBlob(blobs, cfgBytes), len(cfgBytes)
	manifest["layers"] = append(manifest["layers"].([]any), map[string]any{
		"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerDigest, "size": layer.Len(),
	})
	mBytes, _ := json.Marshal(manifest)
	mDigest := addBlob(blobs, mBytes)
	blobs["index.json"], _ = json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []any{map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mDigest, "size": len(mBytes),
			"annotations": map[string]string{"io.containerd.image.name": name},
		}},
	})
	return writeTar(out, blobs)
}

func blobPath(digest string) string {
	return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:")
}

// addBlob stores b under its digest and returns the digest.
func addBlob(blobs map[string][]byte, b []byte) string {
	sum := sha256.Sum256(b)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	blobs[blobPath(digest)] = b
	return digest
}

// readTar reads the regular files of a tar by name.
func readTar(path string) (map[string][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if h.Typeflag == tar.TypeReg {
			var buf bytes.Buffer
			if _, err := buf.ReadFrom(tr); err != nil {
				return nil, err
			}
			files[strings.TrimPrefix(h.Name, "./")] = buf.Bytes()
		}
	}
}

// writeTar writes files to a new tar at path.
func writeTar(path string, files map[string][]byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"oci-layout", "index.json"} {
		if _, ok := files[name]; !ok {
			return fmt.Errorf("%s lacks %s", path, name)
		}
	}
	names := slices.Sorted(maps.Keys(files))
	dirs := map[string]bool{}
	for _, name := range names {
		for d := filepath.Dir(name); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return err
		}
	}
	for _, name := range names {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[name]))}); err != nil {
			return err
		}
		if _, err := tw.Write(files[name]); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
