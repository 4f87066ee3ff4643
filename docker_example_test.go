package agentbackend_test

import (
	"context"
	"fmt"
	"log"
	"time"

	ab "github.com/agentbackend/agentbackend"
)

// A container for one agent: files and commands inside it, removed on
// Close. By default it has no network, no new privileges, few capabilities
// and limits on memory, CPU and processes; here the limits are tighter.
func ExampleNewDocker() {
	ctx := context.Background()
	b, err := ab.NewDocker(ctx, ab.DockerConfig{
		Image:       "python:3.12-slim",
		MemoryLimit: 512 << 20,
		PidsLimit:   256,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	if err := b.Write(ctx, "hello.py", []byte("print('hello from the container')\n")); err != nil {
		log.Fatal(err)
	}
	res, err := b.Exec(ctx, "python3 hello.py", &ab.ExecOptions{Timeout: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(res.Stdout))
}

// One container per user, with each user's files kept on the host between
// containers.
func ExampleSessionManager() {
	ctx := context.Background()
	rt, _ := ab.BuiltinRuntime("python-datascience")
	m, err := ab.NewSessionManager(ab.SessionConfig{
		Docker:          ab.DockerConfig{Runtime: &rt},
		WorkspaceRoot:   "/srv/agent-workspaces",
		IdleTimeout:     30 * time.Minute,
		CleanupInterval: time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Shutdown(ctx)

	alice, err := m.GetOrCreate(ctx, "alice")
	if err != nil {
		log.Fatal(err)
	}
	res, err := alice.Exec(ctx, "python3 -c 'import pandas; print(pandas.__version__)'", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(res.Stdout))
}
