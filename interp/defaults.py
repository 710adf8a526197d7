"""Shared constants: the thresholds that sort tasks, the display order of methods, the default task lists.

One definition each, read by the library's report and figures and by the studies above it, so a table, its
figure and a claim never disagree on what "weak ICL" means or which tasks are "the core ten".
"""

from __future__ import annotations

#: clean-ICL accuracy below this (mean over seeds) marks a task with little ICL to restore: such tasks are
#: shown but left out of the "tasks where ICL works" means
WEAK_ICL = 0.2
#: clean-ICL accuracy at or above this marks the tasks where ICL works (the headline's second mean and the
#: study's "strong ICL" subset; below it a task is "not strong")
STRONG_ICL = 0.5

#: above this many tasks a Markdown comparison table is transposed (tasks as rows)
WIDE = 12

#: methods in the order every comparison table and figure lists them (labels of `interp.sweep.cells.LABELS`)
ROW_ORDER = ("none", "ICL (clean)", "random-θ", "steering", "FV", "TV", "LTV", "LTV (multi-task)")
#: the corrupted settings a comparison shows, in order
SETTINGS = ("zero-shot", "shuffled")

#: the core text tasks of the sweeps (the suite comparison's seeds 0-2): SmolLM2's strongest ICL tasks and
#: two weak ones, from the function-vectors suite (`$INTERP_TASKS_DIR`)
CORE_TASKS = (
    "capitalize", "present-past", "singular-plural", "country-capital", "antonym", "english-french",
    "person-sport", "lowercase_first_letter", "choose_first_of_3", "adjective_v_verb_3",
)  # fmt: skip
#: the science study's tasks: clean 10-shot ICL >= 0.5 on SmolLM2, plus antonym and one weak task
STUDY_TASKS = (
    "capitalize", "present-past", "singular-plural", "lowercase_first_letter", "choose_first_of_3",
    "adjective_v_verb_3", "antonym", "english-french",
)  # fmt: skip

#: the figure pipeline's tasks (`interp figures`): the project's built-in tasks (offline default) ...
FIGURE_BUILTIN_TASKS = (
    "antonym", "country_capital", "present_past", "capitalize", "singular_plural", "number_word", "next_letter",
    "lowercase_first_letter",
)  # fmt: skip
#: ... and the same kinds of task by their function-vectors-suite names, when a tasks dir is given
FIGURE_SUITE_TASKS = (
    "antonym", "country-capital", "present-past", "capitalize", "singular-plural", "english-french", "person-sport",
    "lowercase_first_letter",
)  # fmt: skip
