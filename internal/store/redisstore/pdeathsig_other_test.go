//go:build !linux

package redisstore_test

import "os/exec"

func setPdeathsig(*exec.Cmd) {}
