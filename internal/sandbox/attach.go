package sandbox

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
)

// Attacher gives a sandbox without the host's network a way out: Start
// calls it once bubblewrap has made the sandbox's namespaces and before
// the command runs, with the sandbox's network namespace (an open
// /proc/PID/ns/net of its init), so that it can bind a listener there
// (netproxy.ListenIn). What it returns is closed once the command has been
// waited for. An error fails Start; the sandbox is killed before its
// command runs.
type Attacher func(netns *os.File) (io.Closer, error)

// attachment is what Command prepared for an Attacher: the parent's ends
// of the pipes bubblewrap reports on (--info-fd: the pid and namespaces of
// its init) and waits on (--block-fd: the command runs once a byte comes).
type attachment struct {
	attach Attacher
	info   *os.File // read end
	block  *os.File // write end
	err    error    // the pipes could not be made: Start fails with it
}

func (a *attachment) close() {
	if a.err == nil {
		a.info.Close()
		a.block.Close()
	}
}

// attachments are the prepared attachments of commands built by Command
// and not yet started (Start) or released (Release).
var attachments sync.Map // *exec.Cmd -> *attachment

// prepareAttach adds bubblewrap's --info-fd and --block-fd to args, their
// child ends to files (whose first one is descriptor firstFD), and returns
// the parent's ends.
func prepareAttach(attach Attacher, args []string, files []*os.File, firstFD int) ([]string, []*os.File, *attachment) {
	infoR, infoW, err := os.Pipe()
	if err != nil {
		return args, files, &attachment{err: err}
	}
	blockR, blockW, err := os.Pipe()
	if err != nil {
		infoR.Close()
		infoW.Close()
		return args, files, &attachment{err: err}
	}
	args = append(args, "--info-fd", strconv.Itoa(firstFD+len(files)), "--block-fd", strconv.Itoa(firstFD+len(files)+1))
	files = append(files, infoW, blockR)
	return args, files, &attachment{attach: attach, info: infoR, block: blockW}
}

// takeAttachment removes and returns what Command prepared for cmd.
func takeAttachment(cmd *exec.Cmd) *attachment {
	if v, ok := attachments.LoadAndDelete(cmd); ok {
		return v.(*attachment)
	}
	return nil
}
