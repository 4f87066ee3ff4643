package agentbackend

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestErrorFormat: every error has the one shape "CODE: op path: reason",
// whatever produced it. The cases are the ones a new user met.
func TestErrorFormat(t *testing.T) {
	ctx := context.Background()
	b := newLocal(t, LocalConfig{Isolation: IsolationNone})
	require.NoError(t, b.Write(ctx, "f.txt", []byte("x")))

	_, err := b.Read(ctx, "")
	assert.EqualError(t, err, `READ_FAILED: read "": is a directory`)

	// The root's refusal reads the same however the root is spelled.
	for _, p := range []string{"", ".", "/", "./"} {
		err := b.Remove(ctx, p, RemoveOptions{Recursive: true})
		var e *Error
		require.ErrorAs(t, err, &e, "Remove(%q)", p)
		assert.Equal(t, CodeWriteFailed, e.Code)
		assert.Equal(t, "refusing to remove the workspace root", e.Reason(), "Remove(%q)", p)
	}
	assert.EqualError(t, b.Remove(ctx, ".", RemoveOptions{}), "WRITE_FAILED: rm .: refusing to remove the workspace root")
	assert.EqualError(t, b.Remove(ctx, "", RemoveOptions{}), `WRITE_FAILED: rm "": refusing to remove the workspace root`)

	// A NUL byte in a command is refused before any process starts.
	_, err = b.Exec(ctx, "echo a\x00b", nil)
	assert.EqualError(t, err, `INVALID_ARGUMENT: exec "echo a\x00b": command contains a NUL byte`)

	// A 5000-byte path is shortened in the message, kept whole in Path.
	long := strings.Repeat("abcd/", 1000)
	err = b.Write(ctx, long, []byte("x"))
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, CodeInvalidArgument, e.Code)
	assert.Equal(t, long, e.Path)
	assert.Less(t, len(err.Error()), 250, "%q", err)
	assert.Contains(t, err.Error(), "(5000 bytes)")
	assert.True(t, strings.HasPrefix(err.Error(), "INVALID_ARGUMENT: write abcd/abcd/"), "%q", err)

	// Control characters in a path are quoted, not printed raw.
	_, err = b.Read(ctx, "evil\n\x1b[2Jname")
	assert.EqualError(t, err, `READ_FAILED: read "evil\n\x1b[2Jname": no such file or directory`)

	// The sentinels have the shape too.
	assert.EqualError(t, ErrPathEscape, "PATH_ESCAPE_ATTEMPT: path escapes the workspace")
	assert.EqualError(t, ErrNotImplemented, "NOT_IMPLEMENTED: not implemented by this backend")

	// Memory words the same failures the same way.
	m, err := NewMemory(MemoryConfig{})
	require.NoError(t, err)
	defer m.Close()
	_, err = m.Read(ctx, "")
	assert.EqualError(t, err, `READ_FAILED: read "": is a directory`)
	_, err = m.Read(ctx, "missing")
	assert.EqualError(t, err, "READ_FAILED: read missing: no such file or directory")
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.EqualError(t, m.Remove(ctx, ".", RemoveOptions{}), "WRITE_FAILED: rm .: refusing to remove the workspace root")
}

// TestNewLocalOnAFile: a root that is a file is a configuration mistake,
// named by its field, not a failed write.
func TestNewLocalOnAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f.txt")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
	for _, root := range []string{file, file + "/ws"} {
		_, err := NewLocal(LocalConfig{RootDir: root})
		assert.EqualError(t, err, "INVALID_CONFIGURATION: LocalConfig.RootDir: "+root+" is not a directory")
		assert.ErrorIs(t, err, ErrInvalidConfiguration)
	}
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, "x", string(data), "the file is untouched")
}

// TestPermissionsFromJSONNull: null is not a policy.
func TestPermissionsFromJSONNull(t *testing.T) {
	for _, in := range []string{"null", " null\n"} {
		p, err := PermissionsFromJSON([]byte(in))
		assert.Nil(t, p)
		assert.Equal(t, CodeInvalidConfiguration, ErrorCode(err), "%v", err)
		assert.Contains(t, err.Error(), "permissions: got JSON null")
	}
	p, err := PermissionsFromJSON([]byte("{}"))
	require.NoError(t, err, "an empty object is a policy of defaults")
	assert.NotNil(t, p)
}

// TestErrorShortenRunes: shortening never cuts a character in two.
func TestErrorShortenRunes(t *testing.T) {
	long := strings.Repeat("é", 300)
	s := shorten(long)
	assert.True(t, strings.HasSuffix(s, "(600 bytes)"), s)
	assert.NotContains(t, s, "\uFFFD")
	assert.Equal(t, "short", shorten("short"))
}
