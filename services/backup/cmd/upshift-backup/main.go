// Command upshift-backup runs the backup service for the targets in its targets file.
package main

import (
	"os"

	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/services/backup"
)

func main() { os.Exit(service.Main(backup.Program(&backup.Settings{}))) }
