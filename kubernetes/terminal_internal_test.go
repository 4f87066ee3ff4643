package kubernetes

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/remotecommand"
)

// The resize channel gets the newest size (one not yet sent is replaced,
// never queued without bound), and Next ends once the exec has.
func TestSizeQueue(t *testing.T) {
	q := &sizeQueue{next: make(chan remotecommand.TerminalSize, 1), ended: make(chan struct{})}
	q.set(24, 80)
	got := q.Next()
	require.NotNil(t, got)
	assert.Equal(t, remotecommand.TerminalSize{Width: 80, Height: 24}, *got)
	q.set(30, 100)
	q.set(40, 120)
	got = q.Next()
	require.NotNil(t, got)
	assert.Equal(t, remotecommand.TerminalSize{Width: 120, Height: 40}, *got, "the newest size")
	close(q.ended)
	assert.Nil(t, q.Next(), "Next once the exec has ended")
}
