sf-forward --help | grep -c -e "^examples:" -e "^  sf-forward" -e "Exit codes"
