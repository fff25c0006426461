// Command upshift-notify runs the notify service: it routes saga events to teams and delivers notices.
package main

import (
	"os"

	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/services/notify"
)

func main() { os.Exit(service.Main(notify.Program(&notify.Settings{}))) }
