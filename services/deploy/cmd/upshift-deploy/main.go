// Command upshift-deploy runs the deploy service for the targets in its targets file.
package main

import (
	"os"

	"github.com/upshift/upshift/pkg/service"
	"github.com/upshift/upshift/services/deploy"
)

func main() { os.Exit(service.Main(deploy.Program(&deploy.Settings{}))) }
