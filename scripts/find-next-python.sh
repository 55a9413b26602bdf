#!/usr/bin/env bash
# Print the path of a Python 3.12 or 3.13 (pyenv's or on PATH), or nothing.
for v in 3.12 3.13; do
    for cand in "$HOME"/.pyenv/versions/"$v".*/bin/python"$v" "$(command -v python$v 2>/dev/null)"; do
        if [ -n "$cand" ] && [ -x "$cand" ]; then
            echo "$cand"
            exit 0
        fi
    done
done
