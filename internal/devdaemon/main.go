// Command devdaemon runs this module's daemon for manual testing until the
// agent-backend CLI wires it in: devdaemon <rootDir> <addr> <token> [hostKeyPath].
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/agentbackend/agentbackend/daemon"
)

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: devdaemon <rootDir> <addr> <token> [hostKeyPath]")
		os.Exit(2)
	}
	cfg := daemon.Config{RootDir: os.Args[1], AuthToken: os.Args[3]}
	if len(os.Args) > 4 {
		cfg.HostKeyPath = os.Args[4]
	}
	if err := daemon.Run(context.Background(), cfg, os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
