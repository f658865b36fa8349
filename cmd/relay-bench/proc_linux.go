package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel stop the relay if the bench dies without
// its cleanup (kill -9), so no relay is left holding sockets and ports.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
