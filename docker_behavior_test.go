package agentbackend_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"go.uber.org/goleak"

	ab "github.com/agentbackend/agentbackend"
)

// dockerProcs lists the commands running in container id (ps, through the
// Engine API, not the backend).
func dockerProcs(t *testing.T, id string) (string, bool) {
	t.Helper()
	out, code := dockerRaw(t, id, "ps", "-o", "pid,stat,args")
	return out, code == 0 && strings.Contains(out, "PID")
}

// waitNoProc waits until no process in container id has args containing
// needle, and fails the test if one is still there after a while.
func waitNoProc(t *testing.T, id, needle string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ps, ok := dockerProcs(t, id) // not ok: ps could not run (no pids left)
		if ok && !strings.Contains(ps, needle) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes matching %q left in the container:\n%s", needle, ps)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDockerTimeoutKillsProcessGroup(t *testing.T) {
	needDocker(t)
	t.Parallel()
	b := newDockerBackend(t, ab.DockerConfig{})
	ctx := dockerCtx(t)

	start := time.Now()
	res, err := b.Exec(ctx, "echo started; sleep 31 & sleep 32 & (sleep 33; echo never) & sleep 34", &ab.ExecOptions{Timeout: time.Second})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ab.ErrExecFailed) {
		t.Fatalf("Exec past its timeout: %v, want EXEC_FAILED wrapping context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Exec returned %v after a 1s timeout", elapsed)
	}
	// Under load the echo may not have run within the second; what did
	// arrive is kept.
	if res == nil || !strings.HasPrefix("started\n", string(res.Stdout)) {
		t.Errorf("partial result = %+v, want the output so far", res)
	}
	waitNoProc(t, b.ContainerID(), "sleep 3")

	// Cancelling the context kills just the same, the output that arrived
	// before is in the result, and the backend keeps working afterwards.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res, err = b.Exec(cctx, "echo started; sleep 41 & sleep 42", &ab.ExecOptions{Stdout: cancelOnWrite{cancel}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Exec with a cancelled context: %v, want context.Canceled", err)
	}
	if res == nil || string(res.Stdout) != "started\n" {
		t.Errorf("partial result after cancel = %+v, want the output so far", res)
	}
	waitNoProc(t, b.ContainerID(), "sleep 4")
	if res, err := b.Exec(ctx, "echo alive", nil); err != nil || string(res.Stdout) != "alive\n" {
		t.Fatalf("Exec after a kill: %+v, %v", res, err)
	}
}

// cancelOnWrite cancels a context once the command has written something.
type cancelOnWrite struct{ cancel context.CancelFunc }

func (w cancelOnWrite) Write(p []byte) (int, error) { w.cancel(); return len(p), nil }

func TestDockerLimits(t *testing.T) {
	needDocker(t)
	t.Parallel()

	t.Run("PidsLimitContainsForkBomb", func(t *testing.T) {
		t.Parallel()
		// AllowDangerous: the loop's arithmetic expansion looks like command
		// substitution to the safety check; the container is the guard here.
		b := newDockerBackend(t, ab.DockerConfig{PidsLimit: 32, AllowDangerous: true})
		ctx := dockerCtx(t)
		// The shell either gives up when it cannot fork (ash exits) or is
		// killed by the timeout; either way it was refused processes.
		res, err := b.Exec(ctx, `i=0; while [ $i -lt 300 ]; do sleep 5 & i=$((i+1)); done; echo spawned`,
			&ab.ExecOptions{Timeout: 3 * time.Second})
		if err == nil || res == nil || !strings.Contains(strings.ToLower(string(res.Stderr)), "fork") {
			t.Fatalf("fork bomb was not refused processes: %+v, %v", res, err)
		}
		waitNoProc(t, b.ContainerID(), "sleep 5")
		if res, err := b.Exec(ctx, "echo alive", nil); err != nil || string(res.Stdout) != "alive\n" {
			t.Fatalf("container after the fork bomb: %+v, %v", res, err)
		}
		if err := b.Write(ctx, "after.txt", []byte("still works")); err != nil {
			t.Fatalf("Write after the fork bomb: %v", err)
		}
	})

	t.Run("MemoryLimitContainsHog", func(t *testing.T) {
		t.Parallel()
		const limit = 64 << 20
		b := newDockerBackend(t, ab.DockerConfig{MemoryLimit: limit, CPUs: 1})
		ctx := dockerCtx(t)
		info, err := needDocker(t).ContainerInspect(ctx, b.ContainerID())
		if err != nil || info.HostConfig.Memory != limit || info.HostConfig.NanoCPUs != 1e9 {
			t.Fatalf("container limits: memory %d, cpus %d, %v", info.HostConfig.Memory, info.HostConfig.NanoCPUs, err)
		}
		// dd fills a 256 MiB buffer from /dev/zero: four times the limit.
		res, err := b.Exec(ctx, "dd if=/dev/zero of=/dev/null bs=256M count=1", &ab.ExecOptions{Timeout: time.Minute})
		if err == nil {
			t.Fatalf("memory hog succeeded under a %d MiB limit: %+v", limit>>20, res)
		}
		if res, err := b.Exec(ctx, "echo alive", nil); err != nil || string(res.Stdout) != "alive\n" {
			t.Fatalf("container after the memory hog: %+v, %v", res, err)
		}
		if err := b.Write(ctx, "after.txt", []byte("still works")); err != nil {
			t.Fatalf("Write after the memory hog: %v", err)
		}
	})
}

func TestDockerBinaryFiles(t *testing.T) {
	needDocker(t)
	t.Parallel()
	b := newDockerBackend(t, ab.DockerConfig{})
	ctx := dockerCtx(t)
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		return p
	}
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	cases := map[string][]byte{
		"empty":              {},
		"nul":                {0},
		"all-bytes":          allBytes,
		"crlf-and-hash":      []byte("#END\n#\r\n\x01AB\x02E0\n'$(x)`y`"),
		"inline-max.bin":     random(1 << 20),       // the largest file through the op shell
		"inline-max+1.bin":   random(1<<20 + 1),     // the smallest through tar
		"dir/sub/3MiB.bin":   random(3 << 20),       // tar, in new directories
		"odd/name 'q' $x;.b": random(1<<20 + 12345), // tar, with shell characters in the name
	}
	for name, data := range cases {
		if err := b.Write(ctx, name, data); err != nil {
			t.Fatalf("Write %s: %v", name, err)
		}
	}
	for name, data := range cases {
		got, err := b.Read(ctx, name)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("Read %s: %d bytes (want %d), equal %v, %v", name, len(got), len(data), bytes.Equal(got, data), err)
		}
		fi, err := b.Stat(ctx, name)
		if err != nil || fi.Size != int64(len(data)) || fi.IsDir {
			t.Errorf("Stat %s = %+v, %v", name, fi, err)
		}
		// The bytes in the container are the bytes written.
		out, code := dockerRaw(t, b.ContainerID(), "md5sum", b.RootDir()+"/"+name)
		if want := fmt.Sprintf("%x", md5.Sum(data)); code != 0 || !strings.HasPrefix(out, want) {
			t.Errorf("md5sum %s in the container = %q, want %s", name, out, want)
		}
	}
	// Overwriting a large file with a small one and back replaces it whole.
	if err := b.Write(ctx, "dir/sub/3MiB.bin", []byte("small")); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Read(ctx, "dir/sub/3MiB.bin"); err != nil || string(got) != "small" {
		t.Errorf("after overwrite: %q, %v", got, err)
	}
	// No temporary files are left behind.
	if names, err := b.ReadDir(ctx, "dir/sub"); err != nil || len(names) != 1 {
		t.Errorf("ReadDir dir/sub = %q, %v", names, err)
	}
	// A large write that fails (over a directory) leaves the directory.
	if err := b.Write(ctx, "dir", random(2<<20)); err == nil {
		t.Error("large Write over a directory succeeded")
	}
	if names, err := b.ReadDir(ctx, "dir"); err != nil || len(names) != 1 || names[0] != "sub" {
		t.Errorf("ReadDir dir after a failed write = %q, %v", names, err)
	}
}

func TestDockerTruncatesOutput(t *testing.T) {
	needDocker(t)
	t.Parallel()
	b := newDockerBackend(t, ab.DockerConfig{MaxOutputLength: 100})
	var live bytes.Buffer
	res, err := b.Exec(dockerCtx(t), "head -c 1000 /dev/zero | tr '\\0' a; echo short >&2", &ab.ExecOptions{Stdout: &live})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("a", 100) + "\n\n... [Output truncated. Full output was 1000 bytes, showing first 100]"
	if string(res.Stdout) != want || !res.Truncated || string(res.Stderr) != "short\n" {
		t.Errorf("truncated result: stdout %q, stderr %q, truncated %v", res.Stdout, res.Stderr, res.Truncated)
	}
	if live.Len() != 1000 {
		t.Errorf("live copy has %d bytes, want all 1000", live.Len())
	}
}

// TestDockerEscapesStayOut checks that escaping paths never touch the
// container outside the workspace, and that absolute paths outside it land
// inside it.
func TestDockerEscapesStayOut(t *testing.T) {
	needDocker(t)
	t.Parallel()
	b := newDockerBackend(t, ab.DockerConfig{})
	ctx := dockerCtx(t)
	id := b.ContainerID()
	if _, code := dockerRaw(t, id, "sh", "-c", "echo keep > /marker && mkdir -p /outside/dir"); code != 0 {
		t.Fatal("cannot set up the markers")
	}
	for _, p := range []string{"../marker", "../../marker", "a/../../marker", "/workspace/../marker", "../outside/dir"} {
		errs := map[string]error{
			"Write":  b.Write(ctx, p, []byte("x")),
			"Remove": b.Remove(ctx, p, ab.RemoveOptions{Recursive: true, Force: true}),
			"Rename": b.Rename(ctx, p, "stolen"),
			"Touch":  b.Touch(ctx, p),
			"Mkdir":  b.Mkdir(ctx, p+"/new"),
		}
		_, errs["Read"] = b.Read(ctx, p)
		_, errs["Exec cwd"] = b.Exec(ctx, "touch escaped", &ab.ExecOptions{Cwd: p})
		for op, err := range errs {
			if !errors.Is(err, ab.ErrPathEscape) {
				t.Errorf("%s(%q) = %v, want PATH_ESCAPE_ATTEMPT", op, p, err)
			}
		}
	}
	if err := b.Write(ctx, "/marker", []byte("inside")); err != nil {
		t.Fatal(err)
	}
	if out, _ := dockerRaw(t, id, "cat", "/marker"); out != "keep\n" {
		t.Errorf("/marker outside the workspace = %q, want it untouched", out)
	}
	if out, _ := dockerRaw(t, id, "cat", "/workspace/marker"); out != "inside" {
		t.Errorf("/workspace/marker = %q, want the write to land inside", out)
	}
	if out, _ := dockerRaw(t, id, "ls", "-A", "/outside/dir", "/"); strings.Contains(out, "stolen") || strings.Contains(out, "escaped") || strings.Contains(out, "new") {
		t.Errorf("something was created outside the workspace:\n%s", out)
	}
}

func TestDockerAttachLeavesContainer(t *testing.T) {
	cli := needDocker(t)
	t.Parallel()
	ctx := dockerCtx(t)
	created, err := cli.ContainerCreate(ctx, &container.Config{
		Image: dockerTestImage, Cmd: []string{"sleep", "infinity"},
		Labels: map[string]string{ab.DockerLabelManaged: "true", "io.agentbackend.test": "1"},
	}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := ab.NewDocker(ctx, ab.DockerConfig{ContainerID: created.ID, WorkspaceDir: "/data/ws", Client: cli})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(ctx, "f.txt", []byte("attached")); err != nil {
		t.Fatal(err)
	}
	if res, err := b.Exec(ctx, "cat f.txt; pwd", nil); err != nil || string(res.Stdout) != "attached/data/ws\n" {
		t.Fatalf("Exec in an attached container: %+v, %v", res, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := cli.ContainerInspect(ctx, created.ID)
	if err != nil || !info.State.Running {
		t.Fatalf("attached container after Close: running=%v, %v", info.State != nil && info.State.Running, err)
	}
	// Its op shells are gone with the backend.
	waitNoProc(t, created.ID, "/bin/sh")
	if out, _ := dockerRaw(t, created.ID, "cat", "/data/ws/f.txt"); out != "attached" {
		t.Errorf("file after Close = %q", out)
	}

	_, err = ab.NewDocker(ctx, ab.DockerConfig{ContainerID: "agentbackend-no-such-container", Client: cli})
	if !errors.Is(err, ab.ErrExecError) {
		t.Errorf("attach to a missing container: %v, want EXEC_ERROR", err)
	}
}

func TestDockerRemoveOrphans(t *testing.T) {
	cli := needDocker(t)
	t.Parallel()
	ctx := dockerCtx(t)
	mark := map[string]string{"io.agentbackend.test-orphans": fmt.Sprint(rand.Uint64())}
	b := newDockerBackend(t, ab.DockerConfig{Labels: mark})
	other := newDockerBackend(t, ab.DockerConfig{})

	removed, err := ab.RemoveDockerOrphans(ctx, cli, mark)
	if err != nil || len(removed) != 1 || removed[0] != b.ContainerID() {
		t.Fatalf("RemoveDockerOrphans = %q, %v; want exactly %s", removed, err, b.ContainerID())
	}
	if _, err := cli.ContainerInspect(ctx, b.ContainerID()); !cerrdefs.IsNotFound(err) {
		t.Errorf("orphan still there: %v", err)
	}
	if _, err := cli.ContainerInspect(ctx, other.ContainerID()); err != nil {
		t.Errorf("a container without the label was removed: %v", err)
	}
	// Closing the backend whose container is gone is not an error (the
	// cleanup in newDockerBackend checks).
}

func TestDockerConfigErrors(t *testing.T) {
	cli := needDocker(t)
	t.Parallel()
	ctx := dockerCtx(t)
	for name, cfg := range map[string]ab.DockerConfig{
		"nothing":          {},
		"image and id":     {Image: dockerTestImage, ContainerID: "x"},
		"relative ws":      {Image: dockerTestImage, WorkspaceDir: "ws"},
		"root ws":          {Image: dockerTestImage, WorkspaceDir: "/"},
		"bad env":          {Image: dockerTestImage, Env: map[string]string{"LD_PRELOAD": "x"}},
		"relative volume":  {Image: dockerTestImage, Volumes: map[string]string{"data": "/data"}},
		"bad capability":   {Image: dockerTestImage, Capabilities: []string{"CAP CHOWN"}},
		"bad runtime name": {Runtime: &ab.RuntimeConfig{Name: "Bad Name", BaseImage: dockerTestImage}},
	} {
		cfg.Client = cli
		if _, err := ab.NewDocker(ctx, cfg); !errors.Is(err, ab.ErrInvalidConfiguration) {
			t.Errorf("%s: %v, want INVALID_CONFIGURATION", name, err)
		}
	}
	_, err := ab.NewDocker(ctx, ab.DockerConfig{Image: "agentbackend-test:no-such-tag", Client: cli})
	if !errors.Is(err, ab.ErrExecError) {
		t.Errorf("missing image: %v, want EXEC_ERROR", err)
	}
}

// TestDockerCloseLeaksNothing checks that a backend that made its own
// client, ran every kind of operation and was closed leaves no goroutine.
// Not parallel: goleak looks at every goroutine of the process.
func TestDockerCloseLeaksNothing(t *testing.T) {
	needDocker(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := ab.NewDocker(ctx, ab.DockerConfig{Image: dockerTestImage,
		Labels: map[string]string{"io.agentbackend.test": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 2<<20)
	steps := []func() error{
		func() error { return b.Write(ctx, "small", []byte("s")) },
		func() error { return b.Write(ctx, "big", big) },
		func() error { _, err := b.Read(ctx, "small"); return err },
		func() error { _, err := b.Read(ctx, "big"); return err },
		func() error { _, err := b.ReadDirInfo(ctx, "."); return err },
		func() error {
			_, err := b.Exec(ctx, "cat", &ab.ExecOptions{Stdin: strings.NewReader("in")})
			return err
		},
		func() error {
			_, err := b.Exec(ctx, "sleep 10", &ab.ExecOptions{Timeout: 200 * time.Millisecond})
			if errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return fmt.Errorf("timeout: %v", err)
		},
		func() error {
			_, err := b.Read(ctx, "missing")
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	id := b.ContainerID()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// A client of its own, closed before goleak looks.
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.ContainerInspect(ctx, id); !cerrdefs.IsNotFound(err) {
		t.Errorf("container after Close: %v, want it removed", err)
	}
}

func TestDockerSymlinksAndShellRecovery(t *testing.T) {
	needDocker(t)
	t.Parallel()
	b := newDockerBackend(t, ab.DockerConfig{AllowDangerous: true})
	ctx := dockerCtx(t)
	if out, code := dockerRaw(t, b.ContainerID(), "sh", "-c",
		"mkdir -p /workspace/real && echo hi > /workspace/real/a && head -c 2000000 /dev/zero > /workspace/real/big && ln -s real /workspace/link"); code != 0 {
		t.Fatal(out)
	}
	if names, err := b.ReadDir(ctx, "link"); err != nil || strings.Join(names, ",") != "a,big" {
		t.Errorf("ReadDir through a link = %q, %v", names, err)
	}
	if infos, err := b.ReadDirInfo(ctx, "link"); err != nil || len(infos) != 2 || infos[1].Size != 2000000 {
		t.Errorf("ReadDirInfo through a link = %+v, %v", infos, err)
	}
	if data, err := b.Read(ctx, "link/big"); err != nil || len(data) != 2000000 {
		t.Errorf("large Read through a link: %d bytes, %v", len(data), err)
	}
	if fi, err := b.Stat(ctx, "link"); err != nil || fi.Mode&fs.ModeSymlink == 0 {
		t.Errorf("Stat(link) = %+v, %v; want the link itself", fi, err)
	}

	// A command that kills every shell in the container kills the op
	// shells too (and itself); the next operations start new ones.
	if _, err := b.Exec(ctx, "pkill -9 -x sh", nil); err == nil {
		t.Log("pkill -9 -x sh survived itself")
	}
	time.Sleep(300 * time.Millisecond)
	if err := b.Write(ctx, "after.txt", []byte("recovered")); err != nil {
		t.Fatalf("Write after the shells were killed: %v", err)
	}
	if data, err := b.Read(ctx, "after.txt"); err != nil || string(data) != "recovered" {
		t.Fatalf("Read after the shells were killed: %q, %v", data, err)
	}
}

func TestDockerExecDetails(t *testing.T) {
	needDocker(t)
	t.Parallel()
	b := newDockerBackend(t, ab.DockerConfig{Env: map[string]string{"BASE": "base", "OVER": "base"}})
	ctx := dockerCtx(t)

	// Environment: the backend's under the call's; HOME is the working
	// directory whatever the caller passes.
	res, err := b.Exec(ctx, `echo "$BASE $OVER $HOME $PWD"`, &ab.ExecOptions{Env: map[string]string{"OVER": "call", "HOME": "/root"}})
	if err != nil || string(res.Stdout) != "base call /workspace /workspace\n" {
		t.Errorf("env: %q, %v", res.Stdout, err)
	}

	// A missing working directory is a spawn error about that path.
	_, err = b.Exec(ctx, "true", &ab.ExecOptions{Cwd: "no/such/dir"})
	var e *ab.Error
	if !errors.As(err, &e) || e.Code != ab.CodeExecError || !errors.Is(err, fs.ErrNotExist) || e.Path != "no/such/dir" {
		t.Errorf("missing Cwd: %#v", err)
	}

	// Large stdin, binary, through cat.
	in := make([]byte, 3<<20)
	for i := range in {
		in[i] = byte(i * 7)
	}
	res, err = b.Exec(ctx, "cat | md5sum", &ab.ExecOptions{Stdin: bytes.NewReader(in)})
	if want := fmt.Sprintf("%x", md5.Sum(in)); err != nil || !strings.HasPrefix(string(res.Stdout), want) {
		t.Errorf("stdin md5 = %q, %v; want %s", res.Stdout, err, want)
	}

	// Exit codes come through; stderr is the error's detail.
	res, err = b.Exec(ctx, "echo oops >&2; exit 7", nil)
	if !errors.As(err, &e) || e.ExitCode != 7 || res.ExitCode != 7 || !strings.Contains(e.Error(), "oops") {
		t.Errorf("exit 7: %+v, %v", res, err)
	}
	// Many commands at once.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			res, err := b.Exec(ctx, fmt.Sprintf("echo %d", i), nil)
			if err != nil || string(res.Stdout) != fmt.Sprintf("%d\n", i) {
				t.Errorf("concurrent exec %d: %+v, %v", i, res, err)
			}
		})
	}
	wg.Wait()
}
