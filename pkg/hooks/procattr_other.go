//go:build !linux

package hooks

import "syscall"

// sysProcAttr puts a hook in a process group of its own. Only Linux can
// have it killed when this process dies.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
