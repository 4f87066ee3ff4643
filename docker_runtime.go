package agentbackend

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// RuntimeConfig describes the image a DockerBackend runs: either a
// ready-made image (ImageRef), or one built from BaseImage with packages,
// environment and setup commands, the way pydantic-ai-backend's runtimes
// are. A built image is tagged by a hash of its generated Dockerfile, so
// the first backend that needs it builds it and every later one (the next
// session, the next process) starts at once; changing the runtime changes
// the tag.
type RuntimeConfig struct {
	// Name identifies the runtime ("python-datascience"); it is part of the
	// image tag, so lower-case letters, digits, '.', '_' and '-' only.
	Name string
	// Description says what the runtime is for.
	Description string
	// ImageRef is a ready-made image, used as it is (pulled if missing).
	// When set, the build fields below are ignored.
	ImageRef string
	// BaseImage is the image to build on ("python:3.12-slim").
	BaseImage string
	// Packages are installed with PackageManager ("pandas", "react@18").
	Packages []string
	// PackageManager is "pip" (the default), "npm" (installed into WorkDir,
	// so that code there resolves them) or "apt".
	PackageManager string
	// SetupCommands are shell commands run, in order, before the packages
	// are installed, each as its own RUN step.
	SetupCommands []string
	// Env is set in the image.
	Env map[string]string
	// WorkDir is the image's working directory and the default workspace
	// of a DockerBackend running it. Default /workspace.
	WorkDir string
}

// runtimeImageRepository is the repository built runtime images are tagged
// in: agentbackend-runtime:<name>-<hash>.
const runtimeImageRepository = "agentbackend-runtime"

// dockerLabelRuntime names the runtime a built image was made for.
const dockerLabelRuntime = "io.agentbackend.runtime"

var (
	runtimeNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,100}$`)
	// Package names and version specifiers of pip, npm and apt. They are
	// single-quoted in the Dockerfile; quotes, whitespace and control
	// characters are refused.
	runtimePackageRe = regexp.MustCompile(`^[A-Za-z0-9@][A-Za-z0-9._@/+=<>~!^*:,\[\]-]*$`)
	runtimeWorkDirRe = regexp.MustCompile(`^/[A-Za-z0-9._/-]*$`)
)

// builtinRuntimes mirror pydantic-ai-backend's runtimes of the same names.
var builtinRuntimes = map[string]RuntimeConfig{
	"python-minimal": {
		Name:        "python-minimal",
		Description: "Python 3.12, standard library only",
		ImageRef:    "python:3.12-slim",
	},
	"python-datascience": {
		Name:        "python-datascience",
		Description: "pandas, numpy, matplotlib, scikit-learn, seaborn",
		BaseImage:   "python:3.12-slim",
		Packages:    []string{"pandas", "numpy", "matplotlib", "scikit-learn", "seaborn"},
	},
	"python-web": {
		Name:        "python-web",
		Description: "FastAPI, Uvicorn, SQLAlchemy, httpx",
		BaseImage:   "python:3.12-slim",
		Packages:    []string{"fastapi", "uvicorn", "sqlalchemy", "httpx"},
	},
	"node-minimal": {
		Name:        "node-minimal",
		Description: "Node.js 20, no extra packages",
		ImageRef:    "node:20-slim",
		WorkDir:     "/app",
	},
	"node-react": {
		Name:           "node-react",
		Description:    "TypeScript, Vite and React",
		BaseImage:      "node:20-slim",
		Packages:       []string{"typescript", "vite", "react", "react-dom", "@types/react"},
		PackageManager: "npm",
		// Node resolves node_modules from the working directory, so the
		// packages are installed where the code runs.
		WorkDir: "/app",
	},
}

// BuiltinRuntime returns a copy of the built-in runtime called name:
// python-minimal, python-datascience, python-web, node-minimal or
// node-react. They need a registry to pull their base images from.
func BuiltinRuntime(name string) (RuntimeConfig, bool) {
	r, ok := builtinRuntimes[name]
	r.Packages = slices.Clone(r.Packages)
	r.SetupCommands = slices.Clone(r.SetupCommands)
	r.Env = maps.Clone(r.Env)
	return r, ok
}

// BuiltinRuntimeNames lists the built-in runtimes, sorted.
func BuiltinRuntimeNames() []string {
	return slices.Sorted(maps.Keys(builtinRuntimes))
}

// Dockerfile returns the Dockerfile that builds the runtime, after
// validating every value that goes into it: a package name or environment
// value can never start an instruction or a command of its own.
func (r *RuntimeConfig) Dockerfile() (string, error) {
	if !runtimeNameRe.MatchString(r.Name) {
		return "", errConfig("RuntimeConfig.Name %q: use lower-case letters, digits, '.', '_' and '-'", r.Name)
	}
	if r.BaseImage == "" || strings.ContainsAny(r.BaseImage, " \t\r\n") {
		return "", errConfig("RuntimeConfig %s: BaseImage (or ImageRef) is required", r.Name)
	}
	workDir := r.WorkDir
	if workDir == "" {
		workDir = DefaultDockerWorkspace
	}
	if !runtimeWorkDirRe.MatchString(workDir) {
		return "", errConfig("RuntimeConfig %s: WorkDir %q must be an absolute path of letters, digits, '.', '_', '-' and '/'", r.Name, workDir)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "FROM %s\n", r.BaseImage)
	fmt.Fprintf(&b, "LABEL %s=%s\n", dockerLabelRuntime, dockerfileQuote(r.Name))
	for _, c := range r.SetupCommands {
		if strings.ContainsAny(c, "\r\n") || strings.TrimSpace(c) == "" {
			return "", errConfig("RuntimeConfig %s: a setup command is empty or spans lines: %q", r.Name, c)
		}
		fmt.Fprintf(&b, "RUN %s\n", c)
	}
	if len(r.Packages) > 0 {
		pkgs := make([]string, len(r.Packages))
		for i, p := range r.Packages {
			if !runtimePackageRe.MatchString(p) {
				return "", errConfig("RuntimeConfig %s: invalid package name %q", r.Name, p)
			}
			pkgs[i] = "'" + p + "'"
		}
		list := strings.Join(pkgs, " ")
		switch r.PackageManager {
		case "", "pip":
			fmt.Fprintf(&b, "RUN pip install --no-cache-dir %s\n", list)
		case "npm":
			fmt.Fprintf(&b, "WORKDIR %s\nRUN npm install %s && npm cache clean --force\n", workDir, list)
		case "apt":
			fmt.Fprintf(&b, "RUN apt-get update && apt-get install -y --no-install-recommends %s && rm -rf /var/lib/apt/lists/*\n", list)
		default:
			return "", errConfig("RuntimeConfig %s: PackageManager %q: use pip, npm or apt", r.Name, r.PackageManager)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Env)) {
		v := r.Env[k]
		if !isEnvName(k) || strings.ContainsAny(v, "\x00\r\n") {
			return "", errConfig("RuntimeConfig %s: invalid environment variable %q", r.Name, k)
		}
		fmt.Fprintf(&b, "ENV %s=%s\n", k, dockerfileQuote(v))
	}
	fmt.Fprintf(&b, "WORKDIR %s\n", workDir)
	return b.String(), nil
}

// dockerfileQuote double-quotes a value for ENV and LABEL, escaping what
// the Dockerfile parser would otherwise interpret ($ expansion included).
func dockerfileQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`)
	return `"` + r.Replace(s) + `"`
}

// Tag returns the image tag the runtime builds to, or ImageRef.
func (r *RuntimeConfig) Tag() (string, error) {
	if r.ImageRef != "" {
		return r.ImageRef, nil
	}
	df, err := r.Dockerfile()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(df))
	return runtimeImageRepository + ":" + r.Name + "-" + hex.EncodeToString(sum[:6]), nil
}

// runtimeBuilds serialises builds of one tag within the process, so that
// sessions starting together build an image once.
var runtimeBuilds sync.Map // tag -> *sync.Mutex

// Image returns the image to run: ImageRef (pulled when missing), or the
// built image, which it builds through the Engine API (a generated context
// holding only the Dockerfile) unless an image with its tag exists.
func (r *RuntimeConfig) Image(ctx context.Context, cli client.APIClient) (string, error) {
	tag, err := r.Tag()
	if err != nil {
		return "", err
	}
	if _, err := cli.ImageInspect(ctx, tag); err == nil {
		return tag, nil
	} else if !cerrdefs.IsNotFound(err) {
		return "", dockerErr("inspect image "+tag, err)
	}
	if r.ImageRef != "" {
		rc, err := cli.ImagePull(ctx, tag, image.PullOptions{})
		if err != nil {
			return "", dockerErr("pull image "+tag, err)
		}
		defer rc.Close()
		if err := readEngineStream(rc); err != nil {
			return "", dockerErr("pull image "+tag, err)
		}
		return tag, nil
	}
	mu, _ := runtimeBuilds.LoadOrStore(tag, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if _, err := cli.ImageInspect(ctx, tag); err == nil {
		return tag, nil // built by another caller meanwhile
	}
	df, _ := r.Dockerfile() // validated by Tag
	var tarCtx bytes.Buffer
	tw := tar.NewWriter(&tarCtx)
	_ = tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df)), ModTime: time.Unix(0, 0)})
	_, _ = io.WriteString(tw, df)
	_ = tw.Close()
	resp, err := cli.ImageBuild(ctx, &tarCtx, build.ImageBuildOptions{
		Tags:        []string{tag},
		Remove:      true,
		ForceRemove: true,
		Labels:      map[string]string{dockerLabelRuntime: r.Name},
		Version:     build.BuilderV1, // BuildKit through the API needs a session
	})
	if err != nil {
		return "", dockerErr("build runtime "+r.Name, err)
	}
	defer resp.Body.Close()
	if err := readEngineStream(resp.Body); err != nil {
		return "", dockerErr("build runtime "+r.Name, err)
	}
	return tag, nil
}

// readEngineStream reads a build or pull progress stream to its end and
// returns the error it reports, if any.
func readEngineStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	var last string
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if msg.Stream != "" {
			last = strings.TrimSpace(msg.Stream)
		}
		if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
			msg.Error = msg.ErrorDetail.Message
		}
		if msg.Error != "" {
			if last != "" {
				return errors.New(msg.Error + " (after: " + last + ")")
			}
			return errors.New(msg.Error)
		}
	}
}
