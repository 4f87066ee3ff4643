package kubernetes_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
)

func TestSmoke(t *testing.T) {
	b := newBackend(t, nil)
	ctx := testCtx(t)
	assert.Equal(t, ab.TypeKubernetes, b.Type())
	assert.Equal(t, ab.StatusConnected, b.Status())
	require.NoError(t, b.Write(ctx, "a/b.txt", []byte("hello")))
	data, err := b.Read(ctx, "a/b.txt")
	require.NoError(t, err)
	assert.Equal(t, "hello", string(data))
	assert.Equal(t, "hello", run(t, b, "cat a/b.txt"))
	assert.Equal(t, "/workspace\n", run(t, b, "pwd"))
}
