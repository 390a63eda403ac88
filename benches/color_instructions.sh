#!/usr/bin/env bash
# Instructions (callgrind) per cover of the colour bench's groups, and the table of medians
# with the ratios to color_eighth: the figures of `cargo bench --bench color`, in a unit that
# does not move with the machine's load.
#   benches/color_instructions.sh [COVERS_DIR]   (default: ../shared/covers beside the workspace)
set -euo pipefail
cd "$(dirname "$0")/.."
covers="$(realpath "${1:-../shared/covers}")"
bench="$(cargo bench -p melodyhue-benches --bench color --no-run --message-format=json 2>/dev/null |
    grep '"kind":\["bench"\]' | grep '"name":"color"' |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)"
[ -x "$bench" ] || { echo "the color bench did not build" >&2; exit 1; }
groups=(color_analyze color_classic color_eighth)
declare -A counts
for cover in "$covers"/*.jpg; do
    name="$(basename "$cover")"
    for group in "${groups[@]}"; do
        counts[$group]+="$(MELODYHUE_COVERS_DIR="$covers" MELODYHUE_BENCH_ONCE="$group:$name" \
            valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no \
            --toggle-collect='*measure_once*' "$bench" 2>&1 |
            sed -n 's/.*Collected : \([0-9]*\).*/\1/p') "
    done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {print v[int(NR/2)+1]}'; }
eighth="$(echo "${counts[color_eighth]}" | median)"
echo "median instructions per cover over $(ls "$covers"/*.jpg | wc -l) covers from $covers:"
for group in "${groups[@]}"; do
    m="$(echo "${counts[$group]}" | median)"
    awk -v g="$group" -v m="$m" -v e="$eighth" 'BEGIN {printf "  %-15s %12d   %5.2fx color_eighth\n", g, m, m / e}'
done
