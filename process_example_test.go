//go:build unix

package agentbackend_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/agentbackend/agentbackend"
)

func exampleWorkspace() (*agentbackend.LocalBackend, func()) {
	dir, err := os.MkdirTemp("", "workspace-")
	if err != nil {
		log.Fatal(err)
	}
	b, err := agentbackend.NewLocal(agentbackend.LocalConfig{RootDir: dir, Isolation: agentbackend.IsolationSoftware})
	if err != nil {
		log.Fatal(err)
	}
	return b, func() { b.Close(); os.RemoveAll(dir) }
}

// A command in the background: write to its input, wait for its result.
func ExampleLocalBackend_Start() {
	b, cleanup := exampleWorkspace()
	defer cleanup()
	ctx := context.Background()

	p, err := b.Start(ctx, `read name; echo "hello, $name"; exit 3`, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(p.Stdin(), "agent")
	res, err := p.Wait(ctx)
	fmt.Print(string(res.Stdout))
	fmt.Println(agentbackend.ErrorCode(err), res.ExitCode, p.Info().State)
	// Output:
	// hello, agent
	// EXEC_FAILED 3 exited
}

// Following a process's output as it comes, then stopping it.
func ExampleProcess_Output() {
	b, cleanup := exampleWorkspace()
	defer cleanup()
	ctx := context.Background()

	p, err := b.Start(ctx, `for i in 1 2 3; do echo "tick $i"; sleep 0.01; done; sleep 60`, nil)
	if err != nil {
		log.Fatal(err)
	}
	var seen strings.Builder
	var next int64
	for !strings.Contains(seen.String(), "tick 3") {
		changed := p.Changed() // before reading, so no output is missed
		chunk, n, _ := p.Output(next)
		seen.Write(chunk)
		next = n
		if len(chunk) == 0 {
			<-changed
		}
	}
	fmt.Print(seen.String())
	if err := p.Kill(); err != nil {
		log.Fatal(err)
	}
	<-p.Done()
	fmt.Println(p.Info().State, p.Info().ExitCode)
	// Output:
	// tick 1
	// tick 2
	// tick 3
	// killed 137
}

// A process found again by its ID, as the tools an agent calls do
// (agentmcp's read_output, kill_shell): Processes lists what runs,
// Process finds one.
func ExampleProcessStarter() {
	b, cleanup := exampleWorkspace()
	defer cleanup()
	ctx := context.Background()

	p, err := b.Start(ctx, "echo compiling; sleep 60", nil)
	if err != nil {
		log.Fatal(err)
	}
	id := p.ID()

	list := b.Processes()
	fmt.Println(len(list), list[0].State)
	found, ok := b.Process(id)
	if !ok {
		log.Fatal("not found")
	}
	for found.Info().StdoutBytes == 0 {
		<-found.Changed()
	}
	out, _, _ := found.Output(0)
	fmt.Print(string(out))
	found.Kill()
	<-found.Done()
	fmt.Println(found.Info().State, found.Info().ExitCode)
	// Output:
	// 1 running
	// compiling
	// killed 137
}
