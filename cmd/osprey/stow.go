package main

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/osprey-health/osprey/channels/dicomweb"
)

func init() {
	register(&command{
		name:    "dicom stow",
		summary: "store DICOM files (or every .dcm under a folder) in a DICOMweb server by STOW-RS",
		usage:   "--url BASE [--token T | --user U --password P] FILE|DIR...",
		run: func(ctx context.Context, env *cliEnv, c *command, args []string) error {
			fs := newFlags(env, c)
			url := fs.String("url", "", "DICOMweb service root, e.g. http://127.0.0.1:8081/dicom-web (required)")
			token := fs.String("token", "", "bearer token (default $OSPREY_TOKEN)")
			user := fs.String("user", "", "basic auth user")
			password := fs.String("password", "", "basic auth password")
			if err := fs.Parse(args); err != nil {
				return err
			}
			if *url == "" || fs.NArg() == 0 {
				return errUsage
			}
			if *token == "" && *user == "" {
				*token = os.Getenv("OSPREY_TOKEN")
			}
			files, err := dicomFiles(fs.Args())
			if err != nil {
				return err
			}
			if len(files) == 0 {
				return fmt.Errorf("no .dcm files in %s", strings.Join(fs.Args(), " "))
			}
			var instances [][]byte
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				instances = append(instances, b)
			}
			client, err := dicomweb.NewClient(*url, dicomweb.ClientConfig{Auth: dicomweb.Auth{Token: *token, Username: *user, Password: *password}})
			if err != nil {
				return err
			}
			ct, body := dicomweb.Multipart(instances...)
			res, err := client.Store(ctx, ct, body)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "%d %s: %d instance(s) sent to %s\n", res.Status, http.StatusText(res.Status), len(instances), *url)
			if res.Status >= 300 {
				return fmt.Errorf("STOW-RS answered %d", res.Status)
			}
			return nil
		},
	})
}

// dicomFiles expands folders to the .dcm files under them, sorted; files are taken as given.
func dicomFiles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		var m []string
		err = filepath.WalkDir(a, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.EqualFold(filepath.Ext(path), ".dcm") {
				m = append(m, path)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(m)
		out = append(out, m...)
	}
	return out, nil
}
