"""Sizes of the release browser bundle, gzipped (level 9) one file at a time, as a server
sends them: the main module every page loads, then for each lazy route the chunks it loads
on top (from cargo-leptos's split manifest), and all chunks together. Run by bench/run.sh
after `cargo leptos build --release --split`."""
import gzip
import json
import sys

pkg = sys.argv[1] if len(sys.argv) > 1 else "target/site/pkg"


def sizes(name):
    data = open(f"{pkg}/{name}.wasm", "rb").read()
    return len(data), len(gzip.compress(data, 9))


main_raw, main_gz = sizes("sipfleet")
print(f"Release wasm, main module (every page): {main_raw // 1024} KB, "
      f"{main_gz // 1024} KB gzipped (target: under 400 KB gzipped)")
manifest = json.load(open(f"{pkg}/__wasm_split_manifest.json"))
every = set()
heaviest = (0, "")
for route, chunks in sorted(manifest.items()):
    every.update(chunks)
    gz = sum(sizes(chunk)[1] for chunk in chunks)
    name = route.strip("_").rsplit("_route_view", 1)[0]
    heaviest = max(heaviest, (main_gz + gz, name))
    print(f"  {name:<16} + {gz // 1024:4d} KB gzipped in {len(chunks):2d} chunks "
          f"= {(main_gz + gz) // 1024} KB for the page")
print(f"  all chunks: {sum(sizes(c)[1] for c in every) // 1024} KB gzipped; heaviest page: "
      f"{heaviest[1]}, {heaviest[0] // 1024} KB")
