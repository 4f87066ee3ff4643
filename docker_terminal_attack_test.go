package agentbackend_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	ab "github.com/agentbackend/agentbackend"
)

// A command on a terminal in the container pushes input (TIOCSTI) into
// every terminal it can name: its own, /dev/console, every /dev/pts entry,
// every descriptor of every process in the container (the victim's
// terminal among them: another process on a terminal, waiting for a line),
// and the path of a terminal of this host that waits for input. Only its
// own terminal takes the input: the victim reads what is typed into its
// terminal and nothing else, and the host's terminal has nothing to read.
func TestAttackDockerTerminalTIOCSTI(t *testing.T) {
	b := newDockerBackend(t, ab.DockerConfig{})
	ctx := dockerCtx(t)

	bin := filepath.Join(t.TempDir(), "tiocsti")
	build := exec.Command("go", "build", "-o", bin, "./testdata/tiocsti")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build the attack: %s", out)
	data, err := os.ReadFile(bin)
	require.NoError(t, err)
	require.NoError(t, b.Write(ctx, "tiocsti", data))
	_, err = b.Exec(ctx, "chmod +x tiocsti", nil)
	require.NoError(t, err)

	hostPTY, hostTTY, err := pty.Open()
	require.NoError(t, err)
	defer hostPTY.Close()
	defer hostTTY.Close()
	raw, err := unix.IoctlGetTermios(int(hostTTY.Fd()), unix.TCGETS)
	require.NoError(t, err)
	raw.Lflag &^= unix.ICANON | unix.ECHO // every byte pushed is readable at once
	require.NoError(t, unix.IoctlSetTermios(int(hostTTY.Fd()), unix.TCSETS, raw))

	victim, err := b.Start(ctx, `echo ready; read -r line; echo "victim got:$line"`, &ab.ExecOptions{Terminal: &ab.Terminal{}})
	require.NoError(t, err)
	terminalWaitOutput(t, victim, "ready")

	attacker, err := b.Start(ctx, `./tiocsti 'echo PWNED`+"\r"+`' /dev/tty /dev/console /dev/pts/* /proc/[0-9]*/fd/* `+hostTTY.Name()+
		`; read -r line; echo "attacker got:$line"`, &ab.ExecOptions{Terminal: &ab.Terminal{}})
	require.NoError(t, err)
	res, err := attacker.Wait(ctx)
	require.NoError(t, err)
	attack := strings.ReplaceAll(string(res.Stdout), "\r", "")
	t.Logf("the attack:\n%s", attack)
	if legacy, _ := os.ReadFile("/proc/sys/dev/tty/legacy_tiocsti"); strings.TrimSpace(string(legacy)) != "0" {
		// The control: the attack works where it may.
		assert.Contains(t, attack, "pushed /dev/tty\n", "TIOCSTI into the command's own terminal")
		assert.Contains(t, attack, "attacker got:echo PWNED\n", "its own terminal took the input")
	}

	_, err = victim.Stdin().Write([]byte("typed\r"))
	require.NoError(t, err)
	res, err = victim.Wait(ctx)
	require.NoError(t, err)
	assert.Contains(t, strings.ReplaceAll(string(res.Stdout), "\r", ""), "victim got:typed\n",
		"the victim's terminal took only what was typed into it")

	pending, err := unix.IoctlGetInt(int(hostTTY.Fd()), unix.TIOCINQ)
	require.NoError(t, err)
	assert.Zero(t, pending, "bytes pushed into the host's terminal")
}

// terminalWaitOutput waits until p's output contains want.
func terminalWaitOutput(t *testing.T, p *ab.Process, want string) {
	t.Helper()
	ctx := dockerCtx(t)
	for {
		changed := p.Changed()
		out, _, done := p.Output(0)
		if strings.Contains(string(out), want) {
			return
		}
		require.False(t, done, "%s ended without printing %q: %q", p.ID(), want, out)
		select {
		case <-changed:
		case <-ctx.Done():
			require.FailNow(t, "no output", "%s did not print %q: %q", p.ID(), want, out)
		}
	}
}
