//go:build !linux

package agentbackend

import (
	"context"

	"github.com/agentbackend/agentbackend/internal/sandbox"
)

// masker computes a command's masks (see the Linux implementation).
type masker func(ctx context.Context, top maskDir) ([]sandbox.Mask, error)

// sandboxMasks has nothing to do: bubblewrap, which applies masks, is
// Linux-only.
func (b *LocalBackend) sandboxMasks(context.Context, *dirHandle, masker) ([]sandbox.Mask, error) {
	return nil, nil
}
