from django.db import models


class Visit(models.Model):
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"Visit at {self.created:%Y-%m-%d %H:%M:%S}"
