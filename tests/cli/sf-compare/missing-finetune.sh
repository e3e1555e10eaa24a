sf-compare --base a.sf
