print("hello from the build host")
