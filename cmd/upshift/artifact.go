package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/upshift/upshift/pkg/artifact"
)

// DefaultBucket is the Object Store bucket `upshift artifact put` uploads to.
const DefaultBucket = "upshift-artifacts"

func artifactCmd(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("upshift artifact", flag.ContinueOnError)
	return &ffcli.Command{Name: "artifact", ShortUsage: "upshift artifact put FILE [--bucket B] [--name N]",
		ShortHelp: "keep release packages in the NATS Object Store", FlagSet: fs,
		Subcommands: []*ffcli.Command{artifactPutCmd(out)},
		Exec:        func(context.Context, []string) error { return flag.ErrHelp }}
}

func artifactPutCmd(out io.Writer) *ffcli.Command {
	var bucket, name string
	c := command("put", "FILE [--bucket B] [--name N]",
		"upload a package (or its signature) to an Object Store bucket; prints the URL and digest for a request", out,
		func(fs *flag.FlagSet) {
			fs.StringVar(&bucket, "bucket", DefaultBucket, "Object Store bucket, created if missing")
			fs.StringVar(&name, "name", "", "object name (default: the file's name)")
		},
		func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("%w: give one file", exitInvalid)
			}
			if name == "" {
				name = filepath.Base(args[0])
			}
			url, digest, err := putArtifact(ctx, js, bucket, name, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "url: %s\ndigest: %s\n", url, digest)
			return nil
		})
	c.ShortUsage = "upshift artifact put FILE [--bucket B] [--name N]"
	return c
}

// putArtifact uploads the file at path as name in bucket and returns its
// URL and sha256 digest, computed from what was uploaded.
func putArtifact(ctx context.Context, js jetstream.JetStream, bucket, name, path string) (string, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	obs, err := js.ObjectStore(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obs, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket,
			Description: "upshift release packages", Storage: jetstream.FileStorage})
	}
	if err != nil {
		return "", "", fmt.Errorf("bucket %s: %w", bucket, err)
	}
	h := sha256.New()
	start := time.Now()
	if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name}, io.TeeReader(f, h)); err != nil {
		return "", "", fmt.Errorf("put %s after %s: %w", name, time.Since(start).Round(time.Millisecond), err)
	}
	return artifact.ObjectURL(bucket, name), "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
