// Command upshift-precheck runs the precheck service for the targets in its targets file.
package main

import (
	"os"

	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/services/precheck"
)

func main() { os.Exit(service.Main(precheck.Program(&precheck.Settings{}))) }
