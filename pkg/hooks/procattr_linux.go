package hooks

import "syscall"

// sysProcAttr puts a hook in a process group of its own and has the kernel
// kill it when the thread that started it (and so this process) dies. A
// daemon the hook started is in that group but not its child: it lives on.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
