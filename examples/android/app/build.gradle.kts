// Sketch (not built in CI; see ../README.md). Versions are the ones this sketch was written
// for; the Java class compiles against tensorflow-lite-api 2.16.1 (tests/jni_test.py).
plugins {
    id("com.android.application") version "8.5.2"
    id("org.jetbrains.kotlin.android") version "1.9.24"
}

android {
    namespace = "org.ttqkeras.example"
    compileSdk = 34
    defaultConfig {
        applicationId = "org.ttqkeras.example"
        minSdk = 24
        targetSdk = 34
        // Ship only the ABIs libttq_delegate_jni.so was built for (src/main/jniLibs/<abi>/).
        ndk { abiFilters += listOf("arm64-v8a", "armeabi-v7a") }
    }
    sourceSets {
        getByName("main") {
            // org.ttqkeras.TtqDelegate, straight from the repository.
            java.srcDir("../../../tflite_delegate/java/src/main/java")
        }
    }
    // The model must stay uncompressed so TFLite can memory-map it from the APK.
    androidResources { noCompress += "tflite" }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_1_8
        targetCompatibility = JavaVersion.VERSION_1_8
    }
    kotlinOptions { jvmTarget = "1.8" }
}

dependencies {
    // The regular TFLite runtime (or com.google.ai.edge.litert:litert, same org.tensorflow.lite
    // API). Not the Play-services runtime: it only accepts opaque (stable-ABI) delegates.
    implementation("org.tensorflow:tensorflow-lite:2.16.1")
}
