//go:build unix

package agentbackend_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/agentbackend/agentbackend"
)

// A workspace directory: files through the path jail, commands in it.
func ExampleNewLocal() {
	dir, err := os.MkdirTemp("", "workspace-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// Auto isolation picks bubblewrap when it works here; software
	// isolation keeps this example the same everywhere.
	b, err := agentbackend.NewLocal(agentbackend.LocalConfig{RootDir: dir, Isolation: agentbackend.IsolationSoftware})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()

	if err := b.Write(ctx, "notes/hello.txt", []byte("hello\n")); err != nil {
		log.Fatal(err)
	}
	res, err := b.Exec(ctx, "wc -c < notes/hello.txt", &agentbackend.ExecOptions{Timeout: time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(res.Stdout))

	_, err = b.Read(ctx, "../outside.txt")
	fmt.Println(agentbackend.ErrorCode(err))
	_, err = b.Exec(ctx, "false", nil)
	fmt.Println(err)
	// Output:
	// 6
	// PATH_ESCAPE_ATTEMPT
	// Command execution failed with exit code 1:
}
