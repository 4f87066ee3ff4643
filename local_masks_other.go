//go:build !linux

package agentbackend

import (
	"errors"

	"github.com/agentbackend/agentbackend/internal/sandbox"
)

// openMasks has nothing to do: bubblewrap, which applies masks, is
// Linux-only.
func (b *LocalBackend) openMasks([]sandbox.Mask) ([]sandbox.Mask, error) { return nil, nil }

// openMaskDir is never called: masks need bubblewrap.
func (b *LocalBackend) openMaskDir(string) (maskDir, error) { return nil, errors.ErrUnsupported }
