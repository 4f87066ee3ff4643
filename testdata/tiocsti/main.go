// Command tiocsti is the attack of TestAttackDockerTerminalTIOCSTI, built
// static and run in the container: it pushes text into the input of every
// terminal named by its arguments (TIOCSTI, one byte at a time) and prints
// one line per terminal: "pushed <path>" or "refused <path>: <why>".
package main

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	text := os.Args[1]
	for _, path := range os.Args[2:] {
		f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			fmt.Printf("refused %s: %v\n", path, err)
			continue
		}
		if err := push(f, text); err != nil {
			fmt.Printf("refused %s: %v\n", path, err)
		} else {
			fmt.Printf("pushed %s\n", path)
		}
		f.Close()
	}
}

func push(f *os.File, text string) error {
	for i := range len(text) {
		c := text[i]
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.TIOCSTI, uintptr(unsafe.Pointer(&c))); errno != 0 {
			return errno
		}
	}
	return nil
}
