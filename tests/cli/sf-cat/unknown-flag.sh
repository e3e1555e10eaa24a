sf-cat --bogus
