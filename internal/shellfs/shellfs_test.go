package shellfs

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// localProc is a shell on this host, standing in for one in a container.
type localProc struct{ cmd *exec.Cmd }

// Wait waits for the shell and its output, not for its input (as a
// container transport does: a shell that died leaves its input unread).
func (p localProc) Wait() (int, error) {
	err := p.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), nil
	}
	return 0, err
}

// Close ends the shell and what it runs, so its output ends at once (as
// dropping a transport's connection does).
func (p localProc) Close() error { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); return nil }

// localShells starts /bin/sh on this host; cut, if set, wraps each shell's
// input (a transport that loses it).
func localShells(t *testing.T, cut func(io.Reader) io.Reader, started *atomic.Int32) *Pool {
	p := NewPool(func(ctx context.Context, stdin io.Reader, output io.Writer) (Process, error) {
		if cut != nil {
			stdin = cut(stdin)
		}
		cmd := exec.Command("/bin/sh")
		cmd.Stdout, cmd.Stderr = output, output
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		go func() {
			_, _ = io.Copy(in, stdin)
			in.Close()
		}()
		if started != nil {
			started.Add(1)
		}
		return localProc{cmd}, nil
	})
	t.Cleanup(p.Close)
	return p
}

func TestFilesRoundTrip(t *testing.T) {
	p := localShells(t, nil, nil)
	ctx := context.Background()
	dir := t.TempDir()
	for _, data := range [][]byte{{}, []byte("x"), []byte("#END\n#\nrm -rf /\n\x01AB\x02\x00"), bytes.Repeat([]byte{0, 1, 2, '#', '\n'}, 100_000)} {
		target := filepath.Join(dir, "sub", "f")
		reply, err := p.Run(ctx, "ab_put", data, filepath.Dir(target), target+".tmp", target, strconv.Itoa(len(data)))
		require.NoError(t, err)
		require.Equal(t, 0, reply.Code, "%s", reply.Text)
		reply, err = p.Run(ctx, "ab_get", nil, target, strconv.Itoa(InlineMax))
		require.NoError(t, err)
		require.Equal(t, 0, reply.Code)
		if len(data) == 0 {
			assert.Empty(t, reply.Data)
		} else {
			assert.Equal(t, data, reply.Data)
		}
		_, err = os.Stat(target + ".tmp")
		assert.True(t, os.IsNotExist(err), "the temporary file was left")
	}
	reply, err := p.Run(ctx, "ab_get", nil, filepath.Join(dir, "missing"), "10")
	require.NoError(t, err)
	assert.Equal(t, ExitNotExist, reply.Code)
}

// TestLostInputLeavesTheTargetAlone: a transport that loses the end of a
// shell's input (containerd closing it early) must not replace a file with
// what arrived.
func TestLostInputLeavesTheTargetAlone(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(target, []byte("old contents"), 0o644))
	var sent atomic.Int64
	const budget = 64 << 10 // the prelude and the request fit; the data does not
	p := localShells(t, func(r io.Reader) io.Reader { return &cutReader{r: r, left: budget, sent: &sent} }, nil)
	data := bytes.Repeat([]byte("new contents "), 20_000)
	reply, err := p.Run(context.Background(), "ab_put", data, dir, target+".tmp", target, strconv.Itoa(len(data)))
	if err == nil {
		assert.NotEqual(t, 0, reply.Code, "a short write succeeded")
	}
	got, rerr := os.ReadFile(target)
	require.NoError(t, rerr)
	assert.Equal(t, "old contents", string(got))
	_, serr := os.Stat(target + ".tmp")
	assert.True(t, os.IsNotExist(serr), "the temporary file was left")
}

// cutReader delivers left bytes, then the end of input.
type cutReader struct {
	r    io.Reader
	left int64
	sent *atomic.Int64
}

func (c *cutReader) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.r.Read(b)
	c.left -= int64(n)
	c.sent.Add(int64(n))
	return n, err
}

// TestJailRefusesLinksOut: RunIn refuses a path whose links lead out of
// the jail, and a jail whose own directory is a link out of its parent.
func TestJailRefusesLinksOut(t *testing.T) {
	p := localShells(t, nil, nil)
	ctx := context.Background()
	root := t.TempDir()
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644))
	scope := filepath.Join(root, "scope")
	require.NoError(t, os.MkdirAll(scope, 0o755))
	require.NoError(t, os.Symlink(outside, filepath.Join(scope, "out")))
	require.NoError(t, os.Symlink(outside, filepath.Join(root, "linked")))
	require.NoError(t, os.WriteFile(filepath.Join(scope, "in"), []byte("i"), 0o644))

	reply, err := p.RunIn(ctx, []string{root, scope}, []string{filepath.Join(scope, "in")}, "ab_get", nil, filepath.Join(scope, "in"), "10")
	require.NoError(t, err)
	assert.Equal(t, 0, reply.Code)
	assert.Equal(t, "i", string(reply.Data))
	for _, c := range []struct {
		roots []string
		path  string
	}{
		{[]string{root, scope}, filepath.Join(scope, "out", "secret")},
		{[]string{root, scope}, filepath.Join(scope, "out")},
		{[]string{root, filepath.Join(root, "linked")}, filepath.Join(root, "linked", "secret")},
	} {
		reply, err := p.RunIn(ctx, c.roots, []string{c.path}, "ab_get", nil, c.path, "10")
		require.NoError(t, err)
		assert.Equal(t, ExitEscape, reply.Code, "%v %s", c.roots, c.path)
		assert.Empty(t, reply.Data)
	}
}

// TestDeadShellsAreReplaced: a shell killed between operations is noticed
// and replaced; one killed under a read is replaced and the read tried
// once more.
func TestDeadShellsAreReplaced(t *testing.T) {
	var started atomic.Int32
	p := localShells(t, nil, &started)
	ctx := context.Background()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644))
	reply, err := p.Run(ctx, "ab_get", nil, filepath.Join(dir, "f"), "100")
	require.NoError(t, err)
	require.Equal(t, "data", string(reply.Data))

	// An argument is never a command, whatever it holds.
	marker := filepath.Join(dir, "ran")
	reply, err = p.Run(ctx, "ab_stat", nil, filepath.Join(dir, "f")+"'; touch "+marker+"; '")
	require.NoError(t, err) // quoted: an odd name, not a command
	assert.Equal(t, ExitNotExist, reply.Code)
	_, err = os.Stat(marker)
	assert.True(t, os.IsNotExist(err), "an argument ran as a command")

	before := started.Load()
	for range MaxShells + 1 { // every idle shell dies
		p.mu.Lock()
		for s := range p.all {
			_ = s.proc.Close()
			<-s.done
		}
		p.mu.Unlock()
		reply, err = p.Run(ctx, "ab_get", nil, filepath.Join(dir, "f"), "100")
		require.NoError(t, err)
		assert.Equal(t, "data", string(reply.Data))
	}
	assert.Greater(t, started.Load(), before, "no new shell was started")

	// A cancelled operation ends at once and costs its shell only.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = p.Run(cctx, "ab_grepl", nil, "/proc", "x") // slow: greps /proc
	if err != nil {
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	}
	reply, err = p.Run(ctx, "ab_exists", nil, filepath.Join(dir, "f"))
	require.NoError(t, err)
	assert.Equal(t, 0, reply.Code)
}
