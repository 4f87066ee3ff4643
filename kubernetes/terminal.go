package kubernetes

import (
	"context"
	"os"
	"sync"

	ab "github.com/agentbackend/agentbackend"
	"k8s.io/client-go/tools/remotecommand"
)

// StartTerminal starts cmd with a pods/exec with a TTY (tty=true: the
// container runtime makes the process the leader of a session whose
// controlling terminal it is); the terminal's size goes over the exec's
// resize channel, first the given one, then each Resize.
func (t *transport) StartTerminal(ctx context.Context, cmd *ab.ContainerCommand, rows, cols int) (ab.ContainerTerminal, error) {
	sizes := &sizeQueue{next: make(chan remotecommand.TerminalSize, 1), ended: make(chan struct{})}
	sizes.set(rows, cols)
	p, err := t.start(ctx, cmd, sizes)
	if err != nil {
		return nil, err
	}
	return &terminalProc{execProc: p, sizes: sizes}, nil
}

// terminalProc is an exec on a terminal.
type terminalProc struct {
	*execProc
	sizes *sizeQueue
}

// Resize queues the new size for the exec's resize channel.
func (p *terminalProc) Resize(_ context.Context, rows, cols int) error {
	select {
	case <-p.done:
		return os.ErrProcessDone
	default:
	}
	p.sizes.set(rows, cols)
	return nil
}

// sizeQueue is the remotecommand.TerminalSizeQueue of an exec on a
// terminal: it holds the newest size not yet sent (an older one is
// dropped: only the last size matters), until the exec has ended.
type sizeQueue struct {
	mu    sync.Mutex // serializes set
	next  chan remotecommand.TerminalSize
	ended chan struct{} // closed when the exec has ended: Next returns nil
}

func (q *sizeQueue) set(rows, cols int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	select {
	case <-q.next:
	default:
	}
	q.next <- remotecommand.TerminalSize{Width: uint16(cols), Height: uint16(rows)}
}

// Next returns the next size to send, or nil once the exec has ended.
func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	select {
	case s := <-q.next:
		return &s
	case <-q.ended:
		return nil
	}
}
