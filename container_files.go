package agentbackend

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentbackend/agentbackend/internal/shellfs"
)

// File operations of ContainerBackend. Each resolves its path with the
// package's path rule, then runs one prelude function of an op shell
// (internal/shellfs); Read and Write of files over shellfs.InlineMax move
// over an exec of their own (cat), checked for length on arrival.

// locate checks that the backend is usable and resolves p to its path
// relative to the workspace and its absolute path in the container.
func (b *ContainerBackend) locate(op, p string) (rel, abs string, err error) {
	if err := b.check(op); err != nil {
		return "", "", err
	}
	rel, err = resolve(b.root, op, p)
	if err != nil {
		return "", "", err
	}
	return rel, joinRoot(b.root, rel), nil
}

// Read returns a file's contents.
func (b *ContainerBackend) Read(ctx context.Context, p string) ([]byte, error) {
	_, abs, err := b.locate("read", p)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		reply, err := b.shellRunIn(ctx, []string{abs}, nil, "ab_get", nil, abs, strconv.Itoa(shellfs.InlineMax))
		if err != nil || reply.Code != 0 {
			return nil, b.fileErr(CodeReadFailed, "read", p, reply, err)
		}
		if !reply.Large {
			if reply.Data == nil {
				return []byte{}, nil
			}
			return reply.Data, nil
		}
		// ab_get printed the size and where the file really is (symbolic
		// links resolved).
		sizeText, real, _ := strings.Cut(strings.TrimSuffix(string(reply.Text), "\n"), "\n")
		size, err := strconv.ParseInt(sizeText, 10, 64)
		if err != nil || real == "" {
			return nil, errFileOp(CodeReadFailed, "read", p, shellfs.ErrProtocol)
		}
		data, err := b.readStream(ctx, p, real, size)
		if err == nil || attempt > 0 || !errors.Is(err, errChangedWhileRead) {
			return data, err
		}
		// The file changed while it was read: once more.
	}
}

var errChangedWhileRead = errors.New("the file changed while it was read")

// readStream reads a large file with cat over an exec of its own, and
// insists on getting size bytes: what a stream delivers is checked, never
// assumed.
func (b *ContainerBackend) readStream(ctx context.Context, p, real string, size int64) ([]byte, error) {
	var out, errOut bytes.Buffer
	out.Grow(int(size))
	code, err := b.stream(ctx, []string{"/bin/sh", "-c", `exec cat -- "$1"`, "sh", real}, nil, &out, &errOut)
	switch {
	case err != nil:
		return nil, errFileOp(CodeReadFailed, "read", p, err)
	case code != 0:
		return nil, b.fileErr(CodeReadFailed, "read", p, shellfs.Reply{Code: code, Text: errOut.Bytes()}, nil)
	case int64(out.Len()) != size:
		return nil, errFileOp(CodeReadFailed, "read", p, fmt.Errorf("%w: %d bytes arrived, the file had %d", errChangedWhileRead, out.Len(), size))
	}
	return out.Bytes(), nil
}

// stream runs argv with stdin (may be nil) and collects its output; the
// container's loss and ctx end it.
func (b *ContainerBackend) stream(ctx context.Context, argv []string, stdin *bytes.Reader, stdout, stderr *bytes.Buffer) (int, error) {
	ctx, stop := b.bound(ctx)
	defer stop()
	cmd := &ContainerCommand{Argv: argv, Stdout: stdout, Stderr: stderr}
	if stdin != nil {
		cmd.Stdin = stdin
	}
	proc, err := b.t.Start(ctx, cmd)
	if err != nil {
		return -1, b.orLost(err)
	}
	defer proc.Close()
	done := waitFor(proc)
	select {
	case w := <-done:
		if w.err != nil {
			return -1, b.orLost(w.err)
		}
		return w.code, nil
	case <-ctx.Done():
		_ = proc.Close()
		<-done
		return -1, b.orLost(ctx.Err())
	}
}

// orLost returns the container's loss, if it is lost, else err.
func (b *ContainerBackend) orLost(err error) error {
	if lerr := b.lostErr(); lerr != nil {
		return lerr
	}
	return err
}

// Write creates or replaces a file, creating missing parent directories.
// The data goes to a temporary file in the same directory
// (".agentbe-<random>.tmp", visible to a concurrent listing for that
// moment), which replaces the target only once its length is the length
// sent: readers see the old contents or the new, never a part, and a failed
// or interrupted write leaves the old file in place. Up to 1 MiB travels
// through an op shell; more over an exec of its own.
func (b *ContainerBackend) Write(ctx context.Context, p string, data []byte) error {
	rel, abs, err := b.locate("write", p)
	if err != nil {
		return err
	}
	if rel == "." {
		return errFileOp(CodeWriteFailed, "write", p, &fs.PathError{Op: "write", Path: p, Err: syscall.EISDIR})
	}
	dir := path.Dir(abs)
	tmp := dir + "/.agentbe-" + randomHex(8) + ".tmp"
	size := strconv.Itoa(len(data))
	if len(data) <= shellfs.InlineMax {
		input := data
		if input == nil {
			input = []byte{} // the shell asks for input even when there is none
		}
		reply, err := b.shellRunIn(ctx, []string{dir}, nil, "ab_put", input, dir, tmp, abs, size)
		if err != nil || reply.Code != 0 {
			return b.fileErr(CodeWriteFailed, "write", p, reply, err)
		}
		return nil
	}
	if reply, err := b.shellRunIn(ctx, []string{dir}, nil, "ab_mkdir", nil, dir); err != nil || reply.Code != 0 {
		return b.fileErr(CodeWriteFailed, "write", p, reply, err)
	}
	// The shell stays until cat is done, so that the runtime keeps cat's
	// input open (see containerExecWrapper).
	var out, errOut bytes.Buffer // apart: a transport may fill them from two goroutines
	code, err := b.stream(ctx, []string{"/bin/sh", "-c", `cat > "$1"; exit $?`, "sh", tmp}, bytes.NewReader(data), &out, &errOut)
	if err != nil || code != 0 {
		// A partial temporary file may be there; it is not the target.
		_, _ = b.shellRun(context.WithoutCancel(ctx), "ab_rm", nil, tmp, "0", "1")
		return b.fileErr(CodeWriteFailed, "write", p, shellfs.Reply{Code: code, Text: append(out.Bytes(), errOut.Bytes()...)}, err)
	}
	reply, err := b.shellRunIn(ctx, nil, []string{abs}, "ab_commit", nil, tmp, abs, size)
	if err != nil || reply.Code != 0 {
		return b.fileErr(CodeWriteFailed, "write", p, reply, err)
	}
	return nil
}

// ReadDir returns the sorted names of a directory's children.
func (b *ContainerBackend) ReadDir(ctx context.Context, p string) ([]string, error) {
	_, abs, err := b.locate("readdir", p)
	if err != nil {
		return nil, err
	}
	reply, err := b.shellRunIn(ctx, []string{abs}, nil, "ab_ls", nil, abs)
	if err != nil || reply.Code != 0 {
		return nil, b.fileErr(CodeLsFailed, "readdir", p, reply, err)
	}
	prefix := dirPrefix(abs)
	names := []string{}
	for entry := range bytes.SplitSeq(reply.Text, []byte{0}) {
		if name, ok := strings.CutPrefix(string(entry), prefix); ok && name != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// ReadDirInfo lists a directory with each entry's metadata in one
// operation (see InfoLister). Entries are not followed when they are
// symbolic links, like Stat.
func (b *ContainerBackend) ReadDirInfo(ctx context.Context, p string) ([]FileInfo, error) {
	_, abs, err := b.locate("readdir", p)
	if err != nil {
		return nil, err
	}
	reply, err := b.shellRunIn(ctx, []string{abs}, nil, "ab_lsinfo", nil, abs)
	if err != nil || reply.Code != 0 {
		return nil, b.fileErr(CodeLsFailed, "readdir", p, reply, err)
	}
	prefix := dirPrefix(abs)
	infos := []FileInfo{}
	for _, rec := range splitStatRecords(string(reply.Text), prefix) {
		fi, name, ok := parseStatRecord(rec)
		if !ok {
			continue
		}
		if fi.Name, ok = strings.CutPrefix(name, prefix); ok && fi.Name != "" {
			infos = append(infos, fi)
		}
	}
	slices.SortFunc(infos, func(a, b FileInfo) int { return strings.Compare(a.Name, b.Name) })
	return infos, nil
}

// Mkdir creates a directory and any missing parents.
func (b *ContainerBackend) Mkdir(ctx context.Context, p string) error {
	_, abs, err := b.locate("mkdir", p)
	if err != nil {
		return err
	}
	reply, err := b.shellRunIn(ctx, []string{abs}, nil, "ab_mkdir", nil, abs)
	if err != nil || reply.Code != 0 {
		return b.fileErr(CodeWriteFailed, "mkdir", p, reply, err)
	}
	return nil
}

// Exists reports whether a file or directory (or a symbolic link, even a
// dangling one) exists.
func (b *ContainerBackend) Exists(ctx context.Context, p string) (bool, error) {
	_, abs, err := b.locate("exists", p)
	if err != nil {
		return false, err
	}
	reply, err := b.shellRunIn(ctx, []string{abs}, nil, "ab_exists", nil, abs)
	switch {
	case err != nil:
		return false, b.fileErr(CodeReadFailed, "exists", p, reply, err)
	case reply.Code == 0:
		return true, nil
	case reply.Code == 1:
		return false, nil
	default:
		return false, b.fileErr(CodeReadFailed, "exists", p, reply, nil)
	}
}

// Stat describes a file or directory. A symbolic link is described
// itself, not followed.
func (b *ContainerBackend) Stat(ctx context.Context, p string) (FileInfo, error) {
	rel, abs, err := b.locate("stat", p)
	if err != nil {
		return FileInfo{}, err
	}
	reply, err := b.shellRunIn(ctx, []string{abs}, nil, "ab_stat", nil, abs)
	if err != nil || reply.Code != 0 {
		return FileInfo{}, b.fileErr(CodeReadFailed, "stat", p, reply, err)
	}
	fi, _, ok := parseStatRecord(strings.TrimSuffix(string(reply.Text), "\n"))
	if !ok {
		return FileInfo{}, errFileOp(CodeReadFailed, "stat", p, errors.New(trimText(reply.Text)))
	}
	fi.Name = path.Base(rel)
	return fi, nil
}

// Remove deletes a file or, with opts.Recursive, a directory and everything
// in it; as on LocalBackend, a directory without Recursive fails even when
// empty, and the workspace root itself is never removed (WRITE_FAILED).
func (b *ContainerBackend) Remove(ctx context.Context, p string, opts RemoveOptions) error {
	rel, abs, err := b.locate("rm", p)
	if err != nil {
		return err
	}
	if rel == "." {
		return errFileOp(CodeWriteFailed, "rm", p, errRemoveRoot)
	}
	reply, err := b.shellRunIn(ctx, nil, []string{abs}, "ab_rm", nil, abs, flag(opts.Recursive), flag(opts.Force))
	if err == nil && reply.Code == shellfs.ExitIsDir {
		return errFileOp(CodeWriteFailed, "rm", p, errIsDirectory) // as LocalBackend: even an empty one
	}
	if err != nil || reply.Code != 0 {
		return b.fileErr(CodeWriteFailed, "rm", p, reply, err)
	}
	return nil
}

// Rename moves a file or directory, replacing a file at the target and
// creating the target's missing parents. It will not replace a directory.
func (b *ContainerBackend) Rename(ctx context.Context, from, to string) error {
	relFrom, absFrom, err := b.locate("rename", from)
	if err != nil {
		return err
	}
	relTo, absTo, err := b.locate("rename", to)
	if err != nil {
		return err
	}
	if relFrom == "." || relTo == "." {
		return errFileOp(CodeWriteFailed, "rename", from, &fs.PathError{Op: "rename", Path: from, Err: fs.ErrPermission})
	}
	if absFrom == absTo { // like rename(2): a no-op when the file exists
		ok, err := b.Exists(ctx, from)
		if err == nil && !ok {
			err = errFileOp(CodeWriteFailed, "rename", from, &fs.PathError{Op: "rename", Path: from, Err: fs.ErrNotExist})
		}
		return err
	}
	reply, err := b.shellRunIn(ctx, []string{path.Dir(absTo)}, []string{absFrom, absTo}, "ab_mv", nil, absFrom, absTo, path.Dir(absTo))
	if err != nil || reply.Code != 0 {
		return b.fileErr(CodeWriteFailed, "rename", from, reply, err)
	}
	return nil
}

// Touch creates an empty file, and its missing parents, if none exists;
// an existing file keeps its contents and gets a new modification time.
func (b *ContainerBackend) Touch(ctx context.Context, p string) error {
	_, abs, err := b.locate("touch", p)
	if err != nil {
		return err
	}
	reply, err := b.shellRunIn(ctx, []string{path.Dir(abs), abs}, nil, "ab_touch", nil, path.Dir(abs), abs)
	if err != nil || reply.Code != 0 {
		return b.fileErr(CodeWriteFailed, "touch", p, reply, err)
	}
	return nil
}

// fileErr turns a failed shell operation into an *Error about the caller's
// path: err when the operation could not run, else the function's exit
// status and message mapped to an errno where one is recognised, so that
// errors.Is(err, fs.ErrNotExist) works.
func (b *ContainerBackend) fileErr(code Code, op, p string, reply shellfs.Reply, err error) error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, shellfs.ErrClosed):
		return errDestroyed(op, b.typ)
	case err != nil:
		if lerr := b.lostErr(); lerr != nil {
			return lerr
		}
		return errFileOp(code, op, p, err)
	}
	msg := trimText(reply.Text)
	var cause error
	switch reply.Code {
	case shellfs.ExitNotExist:
		cause = syscall.ENOENT
	case shellfs.ExitNotDir:
		cause = syscall.ENOTDIR
	case shellfs.ExitIsDir:
		cause = syscall.EISDIR
	case shellfs.ExitNotFile:
		cause = syscall.EINVAL
	case shellfs.ExitShort:
		cause = errors.New(msg)
	case shellfs.ExitEscape:
		return errPathEscape(op, p)
	default:
		cause = errnoFromMessage(msg)
	}
	if cause == nil {
		if msg == "" {
			msg = "exit status " + strconv.Itoa(reply.Code)
		}
		cause = errors.New(msg)
	}
	return errFileOp(code, op, p, &fs.PathError{Op: op, Path: p, Err: cause})
}

// dirPrefix is abs as the prefix of its entries' paths.
func dirPrefix(abs string) string {
	if abs == "/" {
		return "/"
	}
	return abs + "/"
}

// splitStatRecords splits stat output ("%f %s %y %n" per line) into
// records. A name may hold a newline: a line that does not start like a
// record of this directory continues the previous one.
func splitStatRecords(out, prefix string) []string {
	var recs []string
	for line := range strings.SplitSeq(strings.TrimSuffix(out, "\n"), "\n") {
		if len(recs) > 0 && !looksLikeStatRecord(line, prefix) {
			recs[len(recs)-1] += "\n" + line
			continue
		}
		recs = append(recs, line)
	}
	return recs
}

func looksLikeStatRecord(line, prefix string) bool {
	f := strings.SplitN(line, " ", 6)
	return len(f) == 6 && strings.HasPrefix(f[5], prefix) && isHex(f[0])
}

func isHex(s string) bool {
	_, err := strconv.ParseUint(s, 16, 32)
	return err == nil
}

// parseStatRecord parses "%f %s %y %n": raw mode in hex, size, modification
// time ("2006-01-02 15:04:05.999999999 -0700") and the path.
func parseStatRecord(rec string) (fi FileInfo, name string, ok bool) {
	f := strings.SplitN(rec, " ", 6)
	if len(f) != 6 {
		return fi, "", false
	}
	raw, err1 := strconv.ParseUint(f[0], 16, 32)
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	mtime, err3 := time.Parse("2006-01-02 15:04:05.999999999 -0700", f[2]+" "+f[3]+" "+f[4])
	if err1 != nil || err2 != nil || err3 != nil {
		return fi, "", false
	}
	fi.Mode = unixMode(uint32(raw))
	fi.IsDir = fi.Mode.IsDir()
	fi.Symlink = fi.Mode&fs.ModeSymlink != 0
	fi.Size = size
	fi.ModTime = mtime.Local()
	return fi, f[5], true
}

// unixMode converts a raw st_mode to an fs.FileMode, as package os does.
func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	case syscall.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		mode |= fs.ModeSocket
	case syscall.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if m&syscall.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&syscall.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&syscall.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// flag renders a boolean argument of a prelude function.
func flag(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// errnoMessages are the strerror texts tools print, for the errors callers
// may want to test for.
var errnoMessages = []struct {
	text  string
	errno syscall.Errno
}{
	{"No such file or directory", syscall.ENOENT},
	{"Not a directory", syscall.ENOTDIR},
	{"Is a directory", syscall.EISDIR},
	{"File exists", syscall.EEXIST},
	{"Directory not empty", syscall.ENOTEMPTY},
	{"Permission denied", syscall.EACCES},
	{"Operation not permitted", syscall.EPERM},
	{"Read-only file system", syscall.EROFS},
	{"No space left on device", syscall.ENOSPC},
	{"Disk quota exceeded", syscall.EDQUOT},
	{"Invalid argument", syscall.EINVAL},
}

// errnoFromMessage returns the errno a tool's message names, or nil.
func errnoFromMessage(msg string) error {
	msg = strings.ToLower(msg) // the engine's messages are lower case
	for _, m := range errnoMessages {
		if strings.Contains(msg, strings.ToLower(m.text)) {
			return m.errno
		}
	}
	return nil
}
