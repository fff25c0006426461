// Command upshift-agent runs precheck, backup, deploy and verify for the
// targets of its host in one process, each phase as its own NATS user.
package main

import (
	"os"

	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/services/agent"
)

func main() { os.Exit(service.Main(agent.Program(&agent.Settings{}))) }
