sf-tokenize --bogus
