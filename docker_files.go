package agentbackend

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
)

// File operations of DockerBackend. Each resolves its path with the
// package's path rule, then runs one prelude function of an op shell
// (docker_shell.go); Read and Write of files over dockerInlineMax use the
// Engine API's tar streams instead.

// locate checks that the backend is open and resolves p to its path
// relative to the workspace and its absolute path in the container.
func (b *DockerBackend) locate(op, p string) (rel, abs string, err error) {
	if err := b.checkOpen(op); err != nil {
		return "", "", err
	}
	rel, err = resolve(b.root, op, p)
	if err != nil {
		return "", "", err
	}
	return rel, joinRoot(b.root, rel), nil
}

// Read returns a file's contents.
func (b *DockerBackend) Read(ctx context.Context, p string) ([]byte, error) {
	_, abs, err := b.locate("read", p)
	if err != nil {
		return nil, err
	}
	reply, err := b.shellRunIn(ctx, []string{abs}, nil, "ab_get", nil, abs, strconv.Itoa(dockerInlineMax))
	if err != nil || reply.Code != 0 {
		return nil, dockerFileErr(CodeReadFailed, "read", p, reply, err)
	}
	if reply.Large {
		// ab_get printed where the file really is (symbolic links
		// resolved), which is what the archive endpoint must be given.
		return b.readTar(ctx, p, strings.TrimSuffix(string(reply.Text), "\n"))
	}
	if reply.Data == nil {
		return []byte{}, nil
	}
	return reply.Data, nil
}

// readTar reads a file through CopyFromContainer.
func (b *DockerBackend) readTar(ctx context.Context, p, target string) ([]byte, error) {
	rc, _, err := b.cli.CopyFromContainer(ctx, b.id, target)
	if err != nil {
		return nil, errFileOp(CodeReadFailed, "read", p, engineCause("read", p, err))
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil {
		return nil, errFileOp(CodeReadFailed, "read", p, err)
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size < 0 {
		return nil, errFileOp(CodeReadFailed, "read", p, &fs.PathError{Op: "read", Path: p, Err: syscall.EINVAL})
	}
	data := make([]byte, hdr.Size)
	if _, err := io.ReadFull(tr, data); err != nil {
		return nil, errFileOp(CodeReadFailed, "read", p, err)
	}
	return data, nil
}

// Write creates or replaces a file, creating missing parent directories.
// The data goes to a temporary file in the same directory
// (".agentbe-<random>.tmp", visible to a concurrent listing for that
// moment), which is then renamed over the target: readers see the old
// contents or the new, never a part, and a failed or interrupted write
// leaves the old file in place. Up to 1 MiB travels through an op shell;
// more goes as a tar stream through CopyToContainer.
func (b *DockerBackend) Write(ctx context.Context, p string, data []byte) error {
	rel, abs, err := b.locate("write", p)
	if err != nil {
		return err
	}
	if rel == "." {
		return errFileOp(CodeWriteFailed, "write", p, &fs.PathError{Op: "write", Path: p, Err: syscall.EISDIR})
	}
	dir := path.Dir(abs)
	tmp := dir + "/.agentbe-" + randomHex(8) + ".tmp"
	if len(data) <= dockerInlineMax {
		input := data
		if input == nil {
			input = []byte{} // the shell asks for input even when there is none
		}
		reply, err := b.shellRunIn(ctx, []string{dir}, nil, "ab_put", input, dir, tmp, abs, strconv.Itoa(len(data)))
		if err != nil || reply.Code != 0 {
			return dockerFileErr(CodeWriteFailed, "write", p, reply, err)
		}
		return nil
	}
	if reply, err := b.shellRunIn(ctx, []string{dir}, nil, "ab_mkdir", nil, dir); err != nil || reply.Code != 0 {
		return dockerFileErr(CodeWriteFailed, "write", p, reply, err)
	}
	err = b.cli.CopyToContainer(ctx, b.id, dir, tarOneFile(path.Base(tmp), data),
		container.CopyToContainerOptions{CopyUIDGID: b.user != ""})
	if err != nil {
		// A partial temporary file may be there; it is not the target.
		_, _ = b.shellRun(context.WithoutCancel(ctx), "ab_rm", nil, tmp, "0", "1")
		return errFileOp(CodeWriteFailed, "write", p, engineCause("write", p, err))
	}
	reply, err := b.shellRunIn(ctx, nil, []string{abs}, "ab_commit", nil, tmp, abs)
	if err != nil || reply.Code != 0 {
		return dockerFileErr(CodeWriteFailed, "write", p, reply, err)
	}
	return nil
}

// tarOneFile returns a tar stream holding one regular file, without copying
// data.
func tarOneFile(name string, data []byte) io.Reader {
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644,
		Size: int64(len(data)), ModTime: time.Now()})
	// tw is not closed: Close would complain that the data is missing. The
	// data, its padding to a 512-byte block and the two-block trailer follow.
	pad := (512 - len(data)%512) % 512
	return io.MultiReader(&hdr, bytes.NewReader(data), bytes.NewReader(make([]byte, pad+1024)))
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ReadDir returns the sorted names of a directory's children.
func (b *DockerBackend) ReadDir(ctx context.Context, p string) ([]string, error) {
	_, abs, err := b.locate("readdir", p)
	if err != nil {
		return nil, err
	}
	reply, err := b.shellRunIn(ctx, []string{abs}, nil, "ab_ls", nil, abs)
	if err != nil || reply.Code != 0 {
		return nil, dockerFileErr(CodeLsFailed, "readdir", p, reply, err)
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

func dirPrefix(abs string) string {
	if abs == "/" {
		return "/"
	}
	return abs + "/"
}

// ReadDirInfo lists a directory with each entry's metadata in one
// operation (see InfoLister). Entries are not followed when they are
// symbolic links, like Stat.
func (b *DockerBackend) ReadDirInfo(ctx context.Context, p string) ([]FileInfo, error) {
	_, abs, err := b.locate("readdir", p)
	if err != nil {
		return nil, err
	}
	reply, err := b.shellRunIn(ctx, []string{abs}, nil, "ab_lsinfo", nil, abs)
	if err != nil || reply.Code != 0 {
		return nil, dockerFileErr(CodeLsFailed, "readdir", p, reply, err)
	}
	prefix := dirPrefix(abs)
	var infos []FileInfo
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
	if infos == nil {
		infos = []FileInfo{}
	}
	return infos, nil
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

// Mkdir creates a directory and any missing parents.
func (b *DockerBackend) Mkdir(ctx context.Context, p string) error {
	_, abs, err := b.locate("mkdir", p)
	if err != nil {
		return err
	}
	reply, err := b.shellRunIn(ctx, []string{abs}, nil, "ab_mkdir", nil, abs)
	if err != nil || reply.Code != 0 {
		return dockerFileErr(CodeWriteFailed, "mkdir", p, reply, err)
	}
	return nil
}

// Exists reports whether a file or directory (or a symbolic link, even a
// dangling one) exists.
func (b *DockerBackend) Exists(ctx context.Context, p string) (bool, error) {
	_, abs, err := b.locate("exists", p)
	if err != nil {
		return false, err
	}
	reply, err := b.shellRunIn(ctx, []string{abs}, nil, "ab_exists", nil, abs)
	switch {
	case err != nil:
		return false, dockerFileErr(CodeReadFailed, "exists", p, reply, err)
	case reply.Code == 0:
		return true, nil
	case reply.Code == 1:
		return false, nil
	default:
		return false, dockerFileErr(CodeReadFailed, "exists", p, reply, nil)
	}
}

// Stat describes a file or directory. A symbolic link is described
// itself, not followed.
func (b *DockerBackend) Stat(ctx context.Context, p string) (FileInfo, error) {
	rel, abs, err := b.locate("stat", p)
	if err != nil {
		return FileInfo{}, err
	}
	reply, err := b.shellRunIn(ctx, []string{abs}, nil, "ab_stat", nil, abs)
	if err != nil || reply.Code != 0 {
		return FileInfo{}, dockerFileErr(CodeReadFailed, "stat", p, reply, err)
	}
	fi, _, ok := parseStatRecord(strings.TrimSuffix(string(reply.Text), "\n"))
	if !ok {
		return FileInfo{}, errFileOp(CodeReadFailed, "stat", p, errors.New(strings.TrimSpace(string(reply.Text))))
	}
	fi.Name = path.Base(rel)
	return fi, nil
}

// Remove deletes a file or, with opts.Recursive, a directory and everything
// in it; as on LocalBackend, a directory without Recursive fails even when
// empty, and the workspace root itself is never removed (WRITE_FAILED).
func (b *DockerBackend) Remove(ctx context.Context, p string, opts RemoveOptions) error {
	rel, abs, err := b.locate("rm", p)
	if err != nil {
		return err
	}
	if rel == "." {
		return errFileOp(CodeWriteFailed, "rm", p, errRemoveRoot)
	}
	reply, err := b.shellRunIn(ctx, nil, []string{abs}, "ab_rm", nil, abs, flag(opts.Recursive), flag(opts.Force))
	if err == nil && reply.Code == dockerExitIsDir {
		return errFileOp(CodeWriteFailed, "rm", p, errIsDirectory) // as LocalBackend: even an empty one
	}
	if err != nil || reply.Code != 0 {
		return dockerFileErr(CodeWriteFailed, "rm", p, reply, err)
	}
	return nil
}

func flag(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// Rename moves a file or directory, replacing a file at the target and
// creating the target's missing parents. It will not replace a directory.
func (b *DockerBackend) Rename(ctx context.Context, from, to string) error {
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
		return dockerFileErr(CodeWriteFailed, "rename", from, reply, err)
	}
	return nil
}

// Touch creates an empty file, and its missing parents, if none exists;
// an existing file keeps its contents and gets a new modification time.
func (b *DockerBackend) Touch(ctx context.Context, p string) error {
	_, abs, err := b.locate("touch", p)
	if err != nil {
		return err
	}
	reply, err := b.shellRunIn(ctx, []string{path.Dir(abs), abs}, nil, "ab_touch", nil, path.Dir(abs), abs)
	if err != nil || reply.Code != 0 {
		return dockerFileErr(CodeWriteFailed, "touch", p, reply, err)
	}
	return nil
}

// dockerFileErr turns a failed shell operation into an *Error about the
// caller's path: err when the operation could not run, else the function's
// exit status and message mapped to an errno where one is recognised, so
// that errors.Is(err, fs.ErrNotExist) works.
func dockerFileErr(code Code, op, p string, reply dockerShellReply, err error) error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, errShellsClosed):
		return errDestroyed(op, TypeDocker)
	case err != nil:
		return errFileOp(code, op, p, err)
	}
	msg := strings.TrimSpace(string(reply.Text))
	var cause error
	switch reply.Code {
	case dockerExitNotExist:
		cause = syscall.ENOENT
	case dockerExitNotDir:
		cause = syscall.ENOTDIR
	case dockerExitIsDir:
		cause = syscall.EISDIR
	case dockerExitNotFile:
		cause = syscall.EINVAL
	case dockerExitEscape:
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

// engineCause turns an Engine API error about a file into a cause that
// answers errors.Is(err, fs.ErrNotExist) when the engine says not found.
func engineCause(op, p string, err error) error {
	if cerrdefs.IsNotFound(err) {
		return &fs.PathError{Op: op, Path: p, Err: errors.Join(fs.ErrNotExist, err)}
	}
	return err
}
