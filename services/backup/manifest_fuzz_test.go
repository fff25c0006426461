package backup

import (
	"os"
	"path"
	"path/filepath"
	"testing"
)

// Whatever a backup's manifest says (a disk that rotted, a hand that
// edited it), reading and checking it never panics, and a manifest that
// passes the check names no entry a restore could write outside the
// target's root or through a link.
func FuzzManifest(f *testing.F) {
	f.Add([]byte(`{"format":1,"saga":"s1","target":"web-1","paths":["releases/1.0"],"entries":[
		{"path":"releases/1.0","type":"dir","mode":493},{"path":"releases/1.0/bin","type":"dir","mode":493},
		{"path":"releases/1.0/bin/app","type":"file","mode":493,"size":3,"sha256":"00"},
		{"path":"releases/1.0/run","type":"symlink","link":"bin/app"}]}`))
	f.Add([]byte(`{"format":2,"saga":"s1","target":"web-1","paths":["../etc"],"entries":[{"path":"../etc","type":"dir"}]}`))
	f.Add([]byte(`{"format":1,"saga":"s1","target":"web-1","paths":["a"],"entries":[{"path":"a","type":"symlink","link":"/etc"},{"path":"a/x","type":"file"}]}`))
	f.Add([]byte(`{"format":9}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ManifestFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := ReadManifest(dir)
		if err != nil {
			return
		}
		if err := m.check("s1", "web-1"); err != nil {
			return
		}
		types := map[string]string{}
		for _, e := range m.Entries {
			if !filepath.IsLocal(filepath.FromSlash(e.Path)) {
				t.Fatalf("entry %q leaves the root", e.Path)
			}
			// Everything but a tree's top lies under a directory entry.
			if parent := path.Dir(e.Path); types[parent] != "" && types[parent] != TypeDir {
				t.Fatalf("entry %q lies under a %s", e.Path, types[parent])
			}
			types[e.Path] = e.Type
		}
	})
}
