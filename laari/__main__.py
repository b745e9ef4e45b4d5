from laari.cli import main

main()
