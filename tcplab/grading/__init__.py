"""Predictions the kernel grades: questions, grading by a run, each learner's records, exports.

``question`` defines a prediction (parameters per learner, the experiment's own rule as tolerance,
the kernel line that decides it), ``grade`` holds an answer to a run (and refuses an untrusted one),
``store`` keeps each learner's attempts in ``~/.tcplab/answers.jsonl``, ``export`` writes the grades
as CSV and as nbgrader's export CSV, ``questions`` is the course's bank, ``room`` the instructor's view of a
room (per question: who answered, predictions against the runs, who is stuck) and its page. The widget is
:class:`tcplab.widgets.predict.Prediction`; docs/grading.md describes the whole.

>>> from tcplab.grading import QUESTIONS, grade
>>> "03.somaxconn" in QUESTIONS
True
"""

from tcplab.grading.export import read_csv, read_gradebook, write_csv, write_gradebook
from tcplab.grading.grade import Grade, grade
from tcplab.grading.question import Question, user_name
from tcplab.grading.questions import QUESTIONS, for_notebook, question
from tcplab.grading.room import render_html, room_view

__all__ = ["Question", "Grade", "grade", "QUESTIONS", "question", "for_notebook", "user_name", "write_csv",
           "read_csv", "write_gradebook", "read_gradebook", "room_view", "render_html"]
