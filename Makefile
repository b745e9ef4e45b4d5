# laari: the two commands of the README are `make setup` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup install test train demo serve bench clean

# set up everything, train the default model on the bundled corpus, evaluate it, show a prediction, and start
# the service with the reviewer page at http://127.0.0.1:8000/ (Ctrl-C stops it)
setup: install train demo serve

install:
	bash scripts/setup.sh

train: install
	$(BIN)/laari train
	$(BIN)/laari evaluate --report reports/heldout
	if [ -f ../shared/real-sample/projects.jsonl ]; then \
	  $(BIN)/laari evaluate --data ../shared/real-sample/projects.jsonl --report reports/real-sample; fi

demo:
	$(BIN)/laari predict --title "Jaksava kotihoito" "Hankkeessa kehitetään kotihoidon työyhteisöjen \
	työhyvinvointia ja vähennetään kiireen aiheuttamaa kuormitusta. Esihenkilöt saavat valmennusta, ja \
	henkilöstön jaksamista seurataan toistuvalla kyselyllä kolmella hyvinvointialueella."

# the whole test suite (sets up what it needs first, without training the default model)
test: install
	$(BIN)/python -m pytest -q

serve: install
	$(BIN)/laari serve

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
