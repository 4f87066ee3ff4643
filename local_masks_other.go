//go:build !linux

package agentbackend

import "github.com/agentbackend/agentbackend/internal/sandbox"

// openMasks has nothing to do: bubblewrap, which applies masks, is
// Linux-only.
func (b *LocalBackend) openMasks([]sandbox.Mask) ([]sandbox.Mask, error) { return nil, nil }
