// Command terminal shows an agent driving an interactive program and
// watching files change: it starts `bash -i` on a pseudo-terminal, types
// commands into it (a line, then Ctrl-C to interrupt a runaway one),
// resizes the terminal, and meanwhile watches a directory into which a
// command writes files.
//
//	go run ./examples/terminal
//
// With bubblewrap installed the shell runs sandboxed, on its own terminal
// inside the sandbox: job control and Ctrl-C work there, and nothing
// reaches the terminal this program runs in.
package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"time"

	ab "github.com/agentbackend/agentbackend"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "agentbe-terminal-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := ab.NewLocal(ab.LocalConfig{RootDir: dir})
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Println("isolation:", b.Isolation())

	// Watch the directory a command will write into.
	if err := b.Mkdir(ctx, "out"); err != nil {
		return err
	}
	events, err := ab.Watch(ctx, b, "out", nil)
	if err != nil {
		return err
	}

	// An interactive shell on a 30x100 terminal.
	sh, err := b.Start(ctx, "bash --norc -i", &ab.ExecOptions{Terminal: &ab.Terminal{Rows: 30, Cols: 100}})
	if err != nil {
		return err
	}
	defer sh.Kill()
	var next int64
	screen := func(want string) (string, error) { // what the terminal showed next, up to want
		var got []byte
		for {
			changed := sh.Changed()
			chunk, n, done := sh.Output(next)
			got, next = append(got, chunk...), n
			if bytes.Contains(got, []byte(want)) {
				return ab.TerminalText(got), nil
			}
			if done {
				return "", fmt.Errorf("the shell ended before %q: %q", want, got)
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return "", fmt.Errorf("no %q: %q", want, got)
			}
		}
	}
	typeLine := func(line string) error {
		_, err := sh.Stdin().Write([]byte(line + "\r")) // Enter
		return err
	}
	if err := typeLine(`PS1='agent$ '`); err != nil {
		return err
	}
	if _, err := screen("agent$ "); err != nil {
		return err
	}

	// A command that writes three files while the watch reports them.
	if err := typeLine(`for i in 1 2 3; do echo "result $i" > out/r$i.txt; done; echo "wrote $((1+2))"`); err != nil {
		return err
	}
	out, err := screen("wrote 3\r\n") // not the echo of the line typed
	if err != nil {
		return err
	}
	fmt.Print("--- terminal ---\n", out, "\n")
	for seen := 0; seen < 3; {
		select {
		case ev := <-events:
			fmt.Printf("watch: %s %s\n", ev.Op, ev.Path)
			if ev.Op == ab.WatchCreate {
				seen++
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	// A runaway command, interrupted with Ctrl-C; the shell lives on.
	if err := typeLine("sleep 1000"); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond) // let it start, as a person would
	ctrlC, _ := ab.TerminalKey("Ctrl-C")
	if _, err := sh.Stdin().Write(ctrlC); err != nil {
		return err
	}
	if err := typeLine(`echo "back $((2+2))"`); err != nil {
		return err
	}
	if out, err = screen("back 4\r\n"); err != nil {
		return err
	}
	fmt.Print("--- after Ctrl-C ---\n", out, "\n")

	// Resize, and the program in the terminal sees it.
	if err := sh.Resize(40, 120); err != nil {
		return err
	}
	if err := typeLine(`echo "size: $(stty size)"; exit 0`); err != nil {
		return err
	}
	if out, err = screen("size: 40 120"); err != nil {
		return err
	}
	fmt.Print("--- after Resize ---\n", out, "\n")
	if _, err := sh.Wait(ctx); err != nil {
		return err
	}
	fmt.Println("the shell exited:", sh.Info())
	return nil
}
