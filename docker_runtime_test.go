package agentbackend_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/image"

	ab "github.com/agentbackend/agentbackend"
)

func TestRuntimeDockerfile(t *testing.T) {
	names := ab.BuiltinRuntimeNames()
	want := []string{"node-minimal", "node-react", "python-datascience", "python-minimal", "python-web"}
	if !slices.Equal(names, want) {
		t.Errorf("BuiltinRuntimeNames() = %q, want %q", names, want)
	}
	ds, ok := ab.BuiltinRuntime("python-datascience")
	if !ok {
		t.Fatal("python-datascience missing")
	}
	df, err := ds.Dockerfile()
	if err != nil || !strings.Contains(df, "FROM python:3.12-slim\n") || !strings.Contains(df, "RUN pip install --no-cache-dir 'pandas' 'numpy'") {
		t.Errorf("python-datascience Dockerfile:\n%s\n%v", df, err)
	}
	react, _ := ab.BuiltinRuntime("node-react")
	df, err = react.Dockerfile()
	if err != nil || !strings.Contains(df, "WORKDIR /app\nRUN npm install 'typescript'") || !strings.HasSuffix(df, "WORKDIR /app\n") {
		t.Errorf("node-react Dockerfile:\n%s\n%v", df, err)
	}
	if minimal, _ := ab.BuiltinRuntime("python-minimal"); minimal.ImageRef != "python:3.12-slim" {
		t.Errorf("python-minimal = %+v", minimal)
	}
	// BuiltinRuntime returns copies.
	ds.Packages[0] = "changed"
	if again, _ := ab.BuiltinRuntime("python-datascience"); again.Packages[0] != "pandas" {
		t.Error("BuiltinRuntime shares its slices")
	}

	// Values are quoted, and what cannot be quoted is refused.
	rt := ab.RuntimeConfig{Name: "q", BaseImage: "base", Env: map[string]string{"V": `a "b" $HOME \ c`}}
	df, err = rt.Dockerfile()
	if err != nil || !strings.Contains(df, `ENV V="a \"b\" \$HOME \\ c"`) {
		t.Errorf("env quoting:\n%s\n%v", df, err)
	}
	for name, bad := range map[string]ab.RuntimeConfig{
		"name":          {Name: "Has Space", BaseImage: "b"},
		"no base":       {Name: "x"},
		"package":       {Name: "x", BaseImage: "b", Packages: []string{"ok", "evil; rm -rf /"}},
		"quote":         {Name: "x", BaseImage: "b", Packages: []string{"a'b"}},
		"setup newline": {Name: "x", BaseImage: "b", SetupCommands: []string{"true\nRUN evil"}},
		"env newline":   {Name: "x", BaseImage: "b", Env: map[string]string{"A": "1\nRUN evil"}},
		"env name":      {Name: "x", BaseImage: "b", Env: map[string]string{"A B": "1"}},
		"workdir":       {Name: "x", BaseImage: "b", WorkDir: "/a b"},
		"manager":       {Name: "x", BaseImage: "b", Packages: []string{"p"}, PackageManager: "brew"},
	} {
		if _, err := bad.Dockerfile(); !errors.Is(err, ab.ErrInvalidConfiguration) {
			t.Errorf("%s: %v, want INVALID_CONFIGURATION", name, err)
		}
	}
	// The tag follows the content.
	a := ab.RuntimeConfig{Name: "t", BaseImage: "b", Packages: []string{"x"}}
	b := a
	b.Packages = []string{"y"}
	ta, _ := a.Tag()
	tb, _ := b.Tag()
	if ta == tb || !strings.HasPrefix(ta, ab.RuntimeImageRepository+":t-") {
		t.Errorf("tags %q and %q", ta, tb)
	}
}

// TestRuntimeBuildsOnceAndRuns builds a runtime FROM the test image (no
// registry needed), runs a backend on it, and checks that a second use
// finds the image instead of building it again.
func TestRuntimeBuildsOnceAndRuns(t *testing.T) {
	cli := needDocker(t)
	t.Parallel()
	ctx := dockerCtx(t)
	rt := &ab.RuntimeConfig{
		Name:          "agentbackend-test",
		Description:   "test runtime " + fmt.Sprint(rand.Uint64()), // not in the Dockerfile
		BaseImage:     dockerTestImage,
		SetupCommands: []string{"echo built > /built.txt", "mkdir -p /opt/tools"},
		Env:           map[string]string{"RT_VAR": `spaced "quoted" $value`},
		WorkDir:       "/srv/app",
	}
	// A fresh image for this run: a different setup command, a new tag.
	rt.SetupCommands = append(rt.SetupCommands, "echo "+fmt.Sprint(rand.Uint64())+" > /build-id")
	tag, err := rt.Image(ctx, cli)
	if err != nil {
		t.Fatalf("Image: %v", err)
	}
	t.Cleanup(func() {
		// After the backend's Close (cleanups run last-registered first).
		if _, err := cli.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			t.Errorf("remove %s: %v", tag, err)
		}
	})
	first, err := cli.ImageInspect(ctx, tag)
	if err != nil || first.Config.Labels[ab.DockerLabelRuntime] != "agentbackend-test" {
		t.Fatalf("built image: %+v, %v", first.Config, err)
	}

	b := newDockerBackend(t, ab.DockerConfig{Runtime: rt})
	assertLockedDown(t, b.ContainerID())
	if b.RootDir() != "/srv/app" {
		t.Errorf("RootDir() = %q, want the runtime's WorkDir", b.RootDir())
	}
	res, err := b.Exec(ctx, `cat /built.txt; printf '%s\n' "$RT_VAR"; pwd`, nil)
	if err != nil || string(res.Stdout) != "built\nspaced \"quoted\" $value\n/srv/app\n" {
		t.Errorf("Exec in the runtime: %q, %v", res.Stdout, err)
	}

	// The second session starts from the same image, without a build.
	again, err := rt.Image(ctx, cli)
	if err != nil || again != tag {
		t.Fatalf("second Image = %q, %v; want %q", again, err, tag)
	}
	second, err := cli.ImageInspect(ctx, tag)
	if err != nil || second.ID != first.ID || second.Created != first.Created {
		t.Errorf("image rebuilt: %s (%s) then %s (%s)", first.ID, first.Created, second.ID, second.Created)
	}
}
