package redisserver

import (
	"os/exec"
	"syscall"
)

// dieWithParent kills the server when the process that started it dies.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
