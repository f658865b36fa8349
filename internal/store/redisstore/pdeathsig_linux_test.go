package redisstore_test

import (
	"os/exec"
	"syscall"
)

// setPdeathsig kills the test's redis-server if the test binary dies.
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
