//go:build linux

package volumes

import (
	"fmt"
	"time"

	"github.com/containerd/errdefs"
)

// String names an image for people: its name, or its layers' chain ID.
func (i Image) String() string {
	if i.Name != "" {
		return fmt.Sprintf("%s (layers %s)", i.Name, i.ChainID)
	}
	return "layers " + i.ChainID
}

// setImage records the image under a machine volume's layer. A change of
// image is recorded, or refused when refuse is set.
func (m *Meta) setImage(img Image, refuse bool) error {
	switch {
	case m.Image == nil:
	case m.Image.ChainID == img.ChainID:
		if m.Image.Name == img.Name {
			return nil
		}
	case refuse:
		return errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf(
			"root volume %s holds a layer made over image %s, but this container's image is %s, and its class says on_image_change = \"refuse\": "+
				"run the old image, or set on_image_change = \"keep\"", m.Name, m.Image, img))
	default:
		m.ImageChanges = append(m.ImageChanges, ImageChange{From: *m.Image, To: img, At: time.Now().UTC()})
	}
	m.Image = &img
	return nil
}

// RecordImage records img as the image under the machine volume in dir,
// over the host's layers lower (see AttachOptions.Lower), noting a change
// of image. The caller holds the volume's lock.
func RecordImage(dir string, img Image, lower string) error {
	m, err := ReadMeta(dir)
	if err != nil {
		return err
	}
	if err := m.setImage(img, false); err != nil {
		return err
	}
	m.Lower = lower
	return WriteMeta(dir, m)
}
