sf-train --help | grep -q "^examples:" && sf-train --help | grep -q "Exit codes" && sf-train --help | grep -q -- "--init-from SAE_DIR"
