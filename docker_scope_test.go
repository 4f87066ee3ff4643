package agentbackend_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
)

// TestDockerScopeJailExec: a container scope's commands run in the scope's
// directory, and a working directory that leads out of the scope through a
// link is refused before anything runs. (The command itself can reach the
// whole container: a container scope jails the file operations, not
// Exec; see ab.ScopedBackend.)
func TestDockerScopeJailExec(t *testing.T) {
	needDocker(t)
	t.Parallel()
	b := newDockerBackend(t, ab.DockerConfig{})
	c := dockerCtx(t)
	require.NoError(t, b.Write(c, "users/bob/secret", []byte("bob's")))
	require.NoError(t, b.Mkdir(c, "users/alice/sub"))
	_, err := b.Exec(c, "s=-s; ln $s -f .. users/alice/up && ln $s -f "+b.RootDir()+"/users/bob users/alice/abs", nil)
	require.NoError(t, err)
	alice, err := b.Scope("users/alice", nil)
	require.NoError(t, err)
	defer alice.Close()
	res, err := alice.Exec(c, "pwd", &ab.ExecOptions{Cwd: "sub"})
	require.NoError(t, err)
	assert.Equal(t, alice.RootDir()+"/sub\n", string(res.Stdout))
	for _, cwd := range []string{"up", "up/bob", "abs", "../bob"} {
		res, err := alice.Exec(c, "cat secret", &ab.ExecOptions{Cwd: cwd})
		assert.Nil(t, res)
		assert.ErrorIs(t, err, ab.ErrPathEscape, "Exec with Cwd %s", cwd)
		_, err = alice.Start(c, "cat secret", &ab.ExecOptions{Cwd: cwd})
		assert.ErrorIs(t, err, ab.ErrPathEscape, "Start with Cwd %s", cwd)
	}
}
